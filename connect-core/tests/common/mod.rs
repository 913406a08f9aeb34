//! What the scenario tests share: a stack in memory, a deployer over it, and assertions on where things end.

#![allow(dead_code)]

use connect_core::engine::{DeployConfig, Deployer, Journal};
use connect_core::memory::{AppBehavior, MemoryStack};
use connect_core::model::{Color, Release};

pub(crate) struct Fixture {
    pub stack: MemoryStack,
    pub deployer: Deployer,
}

pub(crate) fn release(version: &str) -> Release {
    Release::new("connect", version).unwrap()
}

/// The runbook's configuration with holder `test`; with `migration`, the release's migration is Prisma's
/// `npx prisma migrate deploy`.
pub(crate) fn config(migration: bool) -> DeployConfig {
    let mut config = DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    };
    if migration {
        config.app.migration = Some(vec![
            "npx".into(),
            "prisma".into(),
            "migrate".into(),
            "deploy".into(),
        ]);
    }
    config
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture::with_config(config(false))
    }

    /// A fixture whose releases run a migration (see [`config`]).
    pub(crate) fn with_migration() -> Fixture {
        Fixture::with_config(config(true))
    }

    pub(crate) fn with_config(config: DeployConfig) -> Fixture {
        let stack = MemoryStack::new(&config.topology);
        for v in ["v1", "v2", "v3"] {
            stack.add_image(&release(v).image, AppBehavior::default());
        }
        let deployer = Deployer::new(stack.backends(), config).unwrap();
        Fixture { stack, deployer }
    }

    /// A fixture where v1 is live on blue, as in the runbook's "current state".
    pub(crate) async fn with_v1_live() -> Fixture {
        let f = Fixture::new();
        f.deployer.deploy(release("v1")).await.unwrap();
        f
    }

    pub(crate) fn image(&self, version: &str, behavior: AppBehavior) -> Release {
        let r = release(version);
        self.stack.add_image(&r.image, behavior);
        r
    }

    /// The servers taking traffic according to the router itself.
    pub(crate) async fn live_servers(&self) -> Vec<String> {
        connect_core::testing::live_servers(&self.stack.router)
            .await
            .unwrap()
    }

    pub(crate) fn containers(&self) -> Vec<String> {
        self.stack.runtime.container_names()
    }

    pub(crate) async fn journal(&self) -> Journal {
        self.deployer.journal().await.unwrap()
    }

    /// Asserts traffic is on exactly `color`, per the router and the journal.
    pub(crate) async fn assert_live(&self, color: Color) {
        let server = self.deployer.config().topology.slot(color).server.clone();
        assert_eq!(
            self.live_servers().await,
            [server],
            "router: traffic on {color} only"
        );
        assert_eq!(self.journal().await.live, Some(color), "journal: {color} live");
    }
}

/// Unix milliseconds now, as the engine's clock reads them at the start of a test.
pub(crate) fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
