//! pgBackRest settings for the test cluster: the repository in a directory of its own (the "second disk").

use std::time::Duration;

use super::TestCluster;
use super::process::{pg_bin, running_as_root};
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
