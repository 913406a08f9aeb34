//! Where things stand: the journal's view and the router's.

use serde::{Deserialize, Serialize};

use super::Deployer;
use super::journal::{Journal, OperationRecord};
use super::lock::LockInfo;
use super::reconcile::Observed;
use crate::database::ContinuousBackupState;
use crate::error::Result;
use crate::model::Color;

/// The deployment's state, recorded and observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The color taking traffic, per the journal.
    pub live: Option<Color>,
    /// The warm standby, per the journal.
    pub standby: Option<Color>,
    /// When the standby is due to be retired (unix milliseconds), under a retire-after policy.
    pub standby_until_unix_ms: Option<u64>,
    /// The release on each color, per the journal.
    pub releases: Vec<(Color, String)>,
    /// What the router and runtime show now.
    pub observed: Observed,
    /// Where the journal and the observation disagree.
    pub differences: Vec<String>,
    /// Who holds the deploy lock, if anyone.
    pub lock: Option<LockInfo>,
    /// The last ten operations, newest first.
    pub recent: Vec<OperationRecord>,
    /// Continuous database backups (last archived WAL, last full backup), when the database has them; a
    /// database that cannot be asked leaves it `None` (status still answers while the database is down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_backup: Option<ContinuousBackupState>,
}

impl Deployer {
    /// The live color, the release on each color, the router's view and the recent operations.
    pub async fn status(&self) -> Result<Status> {
        let journal: Journal = self.store.load().await?;
        let observed = self.observe().await?;
        Ok(Status {
            live: journal.live,
            standby: journal.standby(),
            standby_until_unix_ms: journal.standby_until_unix_ms,
            releases: journal
                .slots
                .iter()
                .map(|(c, s)| (*c, s.release.version.clone()))
                .collect(),
            differences: observed.differences(&journal),
            observed,
            lock: self.lock().await?,
            recent: journal.history.iter().rev().take(10).cloned().collect(),
            continuous_backup: self.backends.database.continuous_backup().await.ok().flatten(),
        })
    }
}
