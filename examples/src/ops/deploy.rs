//! `deploy` and `rollback`: operations that move traffic, printed step by step as their events come; with
//! `[[app_hosts]]` they drive the fleet (`super::fleet`).

use clap::Args;
use connect_core::engine::{Deployer, OperationRecord};
use connect_core::{Error, ErrorKind, Result};
use tokio::sync::broadcast::error::RecvError;

use super::{Context, Output};

/// `deploy VERSION`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The release, as tagged on the server.
    pub version: String,
}

impl DeployArgs {
    /// Deploys the release blue-green, shipping it first when `[release]` says where it comes from.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let config = cx.config()?;
        let source = config.release_source();
        if config.is_fleet() {
            let fleet = config.fleet_shipping(source.as_ref()).await?;
            let release = config.release(&self.version)?;
            return super::fleet::deploy(&fleet, release, source, &cx.out)
                .await
                .map(drop);
        }
        let deployer = config.deployer_shipping(source.as_ref()).await?;
        let release = config.release(&self.version)?;
        let operation = async {
            match source {
                Some(source) => deployer.deploy_from(release, source).await,
                None => deployer.deploy(release).await,
            }
        };
        let record = with_events(&deployer, &cx.out, operation).await?;
        cx.out.record(&record);
        Ok(())
    }
}

/// `rollback [--to VERSION]`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Redeploy this release through the health gate instead.
    #[arg(long)]
    pub to: Option<String>,
}

impl RollbackArgs {
    /// Instant rollback to the standby, or a full one to `--to`.
    pub async fn run(&self, cx: &Context) -> Result<()> {
        let config = cx.config()?;
        if config.is_fleet() {
            if let Some(version) = &self.to {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "rollback",
                    version,
                    "a full rollback over several app hosts is not done yet",
                )
                .with_hint(format!(
                    "`connect-ops deploy {version}` redeploys it on every host through the health gate"
                )));
            }
            let fleet = config.fleet().await?;
            return super::fleet::rollback(&fleet, &cx.out).await.map(drop);
        }
        let deployer = config.deployer().await?;
        let operation = async {
            match &self.to {
                Some(version) => deployer.rollback_to(version).await,
                None => deployer.rollback().await,
            }
        };
        let record = with_events(&deployer, &cx.out, operation).await?;
        cx.out.record(&record);
        Ok(())
    }
}

/// Runs `operation` while printing its events as they come.
pub async fn with_events<F>(deployer: &Deployer, out: &Output, operation: F) -> Result<OperationRecord>
where
    F: std::future::Future<Output = Result<OperationRecord>>,
{
    let mut events = deployer.subscribe();
    let mut operation = std::pin::pin!(operation);
    loop {
        tokio::select! {
            // Events first, so every one is out before the result.
            biased;
            event = events.recv() => match event {
                Ok(event) => out.event(&event),
                Err(RecvError::Lagged(n)) => out.note(&format!("({n} events skipped)")),
                Err(RecvError::Closed) => {
                    let result = operation.await;
                    out.end_progress();
                    return result;
                }
            },
            result = &mut operation => {
                while let Ok(event) = events.try_recv() {
                    out.event(&event);
                }
                out.end_progress();
                return result;
            }
        }
    }
}
