//! pgBackRest settings for the test cluster: the repository in a directory of its own (the "second disk").

use std::time::Duration;

use connect_core::Result;
use connect_core::wait::poll_until;

use super::TestCluster;
use super::process::{pg_bin, running_as_root, signal};
use crate::pitr::{PitrConfig, PitrNode};

impl TestCluster {
    /// Continuous backups of this cluster: the repository in `<root>/backup-disk/pgbackrest`, pgBackRest's own
    /// files in `<root>/pgbackrest`, every node with its data directory, port and socket directory (the node's
    /// directory), a segment archived at least every `archive_timeout`, and, as root, every program run as
    /// `postgres` (`runuser`).
    pub fn pitr_config(&self, archive_timeout: Duration) -> PitrConfig {
        let root = self.root();
        let nodes = self
            .nodes
            .iter()
            .map(|n| PitrNode {
                member: n.name.clone(),
                data_dir: n.data_dir().display().to_string(),
                port: n.pg_port,
                socket_dir: n.dir.display().to_string(),
            })
            .collect();
        let mut config = PitrConfig::new(
            &root.join("backup-disk/pgbackrest").display().to_string(),
            &root.join("pgbackrest").display().to_string(),
            nodes,
        );
        config.archive_timeout = archive_timeout;
        if let Some(dir) = pg_bin("pg_ctl").parent() {
            config.bin_dir = dir.display().to_string();
        }
        if running_as_root() {
            config.run_as = vec!["runuser".into(), "-u".into(), "postgres".into(), "--".into()];
        }
        config
    }
}

impl TestCluster {
    /// The server's database is lost, its Patroni and etcd left running: Patroni paused (so it neither
    /// restarts PostgreSQL nor fails over), every postmaster SIGKILLed, every data directory removed. What
    /// survives is what a second disk would keep (the pgBackRest repository). Returns when it is gone.
    pub async fn lose_data(&self) -> Result<()> {
        let patroni = self.patroni()?;
        patroni.set_paused(true).await?;
        patroni.wait_paused(true, Duration::from_secs(30)).await?;
        for node in &self.nodes {
            if let Some(pid) = node.postmaster_pid() {
                signal(pid, "KILL");
            }
        }
        for node in &self.nodes {
            // The postmaster's children notice its death and exit on their own, writing meanwhile: removing
            // succeeds once they are gone (tried every 100 ms).
            let dir = node.data_dir();
            poll_until(
                "testing.lose_data",
                &dir.display().to_string(),
                Duration::from_secs(30),
                Duration::from_millis(100),
                || async { Ok(std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())) },
            )
            .await?;
        }
        Ok(())
    }
}
