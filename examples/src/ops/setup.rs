//! `init` and `config check`: the config file, without touching the server.

use clap::{Args, Subcommand};
use connect_core::{Error, ErrorKind, Result};

use super::Context;
use crate::config::TEMPLATE;

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

impl InitArgs {
    /// Writes the commented template; an existing file is kept unless `--force`.
    pub fn run(&self, cx: &Context) -> Result<()> {
        let path = cx.path();
        if path.exists() && !self.force {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "init",
                path.display().to_string(),
                "the file exists",
            )
            .with_hint("edit it, or pass --force to overwrite it"));
        }
        std::fs::write(path, TEMPLATE).map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                "init",
                path.display().to_string(),
                e.to_string(),
            )
            .with_source(e)
        })?;
        cx.out.result(
            &serde_json::json!({"written": path}),
            &format!(
                "wrote {}: set [server] host and [app] image, then `connect-ops config check`",
                path.display()
            ),
        );
        Ok(())
    }
}

/// `config …`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do with the file.
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// The config file's subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Read the file and say what is wrong, without touching the server.
    Check,
}

impl ConfigArgs {
    /// Reads and checks the file.
    pub fn run(&self, cx: &Context) -> Result<()> {
        match self.action {
            ConfigAction::Check => {
                let config = cx.config()?;
                // As the connection will reach it: the ssh config file's HostName, User, Port and ProxyJump
                // applied.
                let server = config.server_address()?;
                cx.out.result(
                    &serde_json::json!({"config": cx.path(), "server": server, "image": config.app.image}),
                    &format!(
                        "{}: ok (server {server}, image {})",
                        cx.path().display(),
                        config.app.image
                    ),
                );
                Ok(())
            }
        }
    }
}
