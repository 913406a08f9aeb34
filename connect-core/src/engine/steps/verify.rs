//! Preflight (runbook §1) and verify (runbook §5) as steps of a deploy; the checks are in `checks.rs`.

use std::time::SystemTime;

use crate::engine::Deployer;
use crate::engine::events::Events;
use crate::error::{ErrorKind, Result};
use crate::model::Color;
use crate::vocabulary::{CheckStatus, Step};

impl Deployer {
    /// Preflight: warnings are reported, failures stop the deploy before anything changes.
    pub(crate) async fn preflight_step(&self, events: &Events) -> Result<String> {
        let report = self.preflight().await?;
        for c in report.with_status(CheckStatus::Warn) {
            events.warn(Step::Preflight, format!("{}: {}", c.name, c.detail));
        }
        let report = report.into_result("deploy.preflight", ErrorKind::Refused)?;
        Ok(format!("{} checks passed", report.checks.len()))
    }

    /// Verify: every post-deployment check of the new color passes.
    pub(crate) async fn verify_step(&self, color: Color, since: SystemTime) -> Result<String> {
        let report = self
            .verify_color(color, since)
            .await?
            .into_result("deploy.verify", ErrorKind::Unhealthy)?;
        Ok(format!("{} checks passed", report.checks.len()))
    }
}
