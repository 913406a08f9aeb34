//! What `connect-ops audit` looks at, from the same file the deploy reads: the sockets and directories the
//! config names, the database and Redis through the server's connection, sshd and the public ports from
//! `[audit]`.

use std::sync::Arc;

use connect_core::audit::fix::SshdFix;
use connect_core::audit::{AuditCheck, AuditSource, HostAuditConfig};
use connect_core::{Host, Result};
use connect_db::Postgres;

use super::ConnectConfig;

impl ConnectConfig {
    /// The host checks' reference points: sshd's config, the public ports, the Docker and HAProxy admin
    /// sockets, the backup and state directories and `[audit] secret_files`, all on the server.
    pub fn host_audit(&self) -> HostAuditConfig {
        let mut private = vec![
            (AuditCheck::BackupFiles, self.database.backup_dir.clone()),
            (AuditCheck::JournalFiles, self.state_dir.clone()),
        ];
        private.extend(
            self.audit
                .secret_files
                .iter()
                .map(|f| (AuditCheck::SecretFiles, f.clone())),
        );
        let mut config = HostAuditConfig::default();
        config.sshd_config = Some(self.audit.sshd_config.clone());
        config.public_ports = self.audit.public_ports.clone();
        config.sockets = vec![
            (AuditCheck::DockerSocket, self.docker.socket.clone()),
            (AuditCheck::HaproxyAdminSocket, self.haproxy.admin_socket.clone()),
        ];
        config.private_paths = private;
        config
    }

    /// The backends that audit themselves, each through `host`: PostgreSQL with the deploy's login, every
    /// Patroni node, Redis.
    pub fn audit_sources(&self, host: Arc<dyn Host>) -> Result<Vec<Arc<dyn AuditSource>>> {
        let cluster = self.database(host.clone())?;
        let postgres = Postgres::new(cluster.login().clone()).through(host.clone());
        Ok(vec![
            Arc::new(postgres),
            Arc::new(cluster.patroni().clone()),
            Arc::new(self.cache(host)?),
        ])
    }

    /// How `--fix` changes sshd.
    pub fn sshd_fix(&self) -> SshdFix {
        let mut fix = SshdFix::default();
        fix.config_path = self.audit.sshd_config.clone();
        fix.reload = self.audit.sshd_reload.clone();
        fix.permit_root_login = self.audit.permit_root_login.clone();
        fix
    }
}
