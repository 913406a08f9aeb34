//! One app host's view of the shared HAProxy backend: only its own two servers.
//!
//! Every host's [`Deployer`](crate::engine::Deployer) runs the one-host steps unchanged (start idle, health
//! gate, drain, verify, settle, reconcile) against this view, so "another server takes traffic" (another
//! host's color) is not drift to it, and its switch and undo touch only its own servers. The fleet moves
//! every host's traffic together through the unscoped router.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::router::{AdminState, ServerFigures, ServerStatus, TrafficRouter};

/// The servers of one host in a backend shared by several.
#[derive(Debug, Clone)]
pub(crate) struct ScopedRouter {
    inner: Arc<dyn TrafficRouter>,
    servers: [String; 2],
}

impl ScopedRouter {
    pub(crate) fn new(inner: Arc<dyn TrafficRouter>, servers: [String; 2]) -> ScopedRouter {
        ScopedRouter { inner, servers }
    }

    fn mine(&self, name: &str) -> bool {
        self.servers.iter().any(|s| s == name)
    }
}

#[async_trait]
impl TrafficRouter for ScopedRouter {
    fn backend(&self) -> &str {
        self.inner.backend()
    }

    async fn servers(&self) -> Result<Vec<ServerStatus>> {
        let mut all = self.inner.servers().await?;
        all.retain(|s| self.mine(&s.name));
        Ok(all)
    }

    async fn set_state(&self, server: &str, state: AdminState) -> Result<()> {
        self.inner.set_state(server, state).await
    }

    async fn set_weight(&self, server: &str, weight: u32) -> Result<()> {
        self.inner.set_weight(server, weight).await
    }

    async fn set_address(&self, server: &str, address: &str, port: u16) -> Result<()> {
        self.inner.set_address(server, address, port).await
    }

    async fn figures(&self) -> Result<Vec<ServerFigures>> {
        let mut all = self.inner.figures().await?;
        all.retain(|s| self.mine(&s.name));
        Ok(all)
    }

    async fn set_maintenance(&self, on: bool) -> Result<()> {
        self.inner.set_maintenance(on).await
    }

    async fn maintenance(&self) -> Result<bool> {
        self.inner.maintenance().await
    }

    // `switch` is the provided one on purpose: it reads `servers()`, this host's view, where the router's
    // own override (HAProxy's) would see the other hosts' live servers and refuse as drift.

    async fn wait_live(&self, server: &str, deadline: Duration) -> Result<ServerStatus> {
        self.inner.wait_live(server, deadline).await
    }

    async fn wait_drained(&self, server: &str, deadline: Duration) -> Result<ServerStatus> {
        self.inner.wait_drained(server, deadline).await
    }
}
