//! etcd + two Patroni nodes running PostgreSQL 15, on 127.0.0.1.

use std::path::Path;
use std::time::Duration;

use connect_core::database::Role;
use connect_core::testing::{free_port, require_program};
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};

use super::PG_PASSWORD;
use super::certs::TestCerts;
use super::node::PatroniNode;
use super::process::{ServerProcess, alive, give_to_postgres, io, pg_bin};
use crate::BasicAuth;
use crate::patroni::PatroniTlsForTesting as PatroniTls;
use crate::{PatroniCluster, PgTarget};

/// Cluster settings.
#[derive(Debug, Clone)]
pub struct TestClusterConfig {
    /// Patroni scope.
    pub scope: String,
    /// Member names, first one bootstraps.
    pub names: Vec<String>,
    /// Locks the cluster down with test certificates ([`TestCerts`]): Patroni's REST API over HTTPS with
    /// basic auth (`restapi.authentication`: [`TestCluster::rest_auth`]), PostgreSQL with `ssl = on`.
    pub secure: bool,
}

impl Default for TestClusterConfig {
    fn default() -> Self {
        TestClusterConfig {
            scope: "connect-test".into(),
            names: vec!["patroni1".into(), "patroni2".into()],
            secure: false,
        }
    }
}

/// etcd plus Patroni nodes of PostgreSQL 15, bootstrapped and streaming.
#[derive(Debug)]
pub struct TestCluster {
    /// The nodes, in the order of the configuration.
    pub nodes: Vec<PatroniNode>,
    /// etcd's client port.
    pub etcd_port: u16,
    /// The certificates of a secure cluster.
    pub certs: Option<TestCerts>,
    /// The REST API's credentials in a secure cluster.
    pub rest_auth: Option<BasicAuth>,
    etcd: Option<ServerProcess>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts etcd and the nodes and waits until there is a running leader and every replica streams with no
    /// lag. `None` (after a loud SKIP) when a program is missing and real tests are not required.
    pub async fn start(test: &str, config: TestClusterConfig) -> Option<TestCluster> {
        require_program(test, "etcd", &[])?;
        require_program(test, "patroni", &[])?;
        require_program(test, "setpriv", &[])?;
        require_program(test, "postgres", &[pg_bin("postgres").to_str().unwrap_or("")])?;
        if config.secure {
            require_program(test, "openssl", &["/usr/bin/openssl"])?;
        }
        Some(
            Self::try_start(config)
                .await
                .unwrap_or_else(|e| panic!("{test}: starting the cluster: {e}")),
        )
    }

    async fn try_start(config: TestClusterConfig) -> Result<TestCluster> {
        remove_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix("connect-db-cluster-")
            .tempdir()
            .map_err(|e| io("testing.cluster", Path::new("/tmp"), e))?;
        let root = dir.path().to_path_buf();
        // A cluster kept in a `static` is never dropped: its directory is removed by a later run (see
        // `remove_stale_dirs`) once this process is gone.
        std::fs::write(root.join("owner.pid"), std::process::id().to_string())
            .map_err(|e| io("testing.cluster", &root, e))?;
        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd_dir = root.join("etcd");
        let etcd = ServerProcess::start(
            "etcd",
            &[
                "etcd".into(),
                "--name".into(),
                "e1".into(),
                "--data-dir".into(),
                etcd_dir.display().to_string(),
                "--listen-client-urls".into(),
                format!("http://127.0.0.1:{etcd_port}"),
                "--advertise-client-urls".into(),
                format!("http://127.0.0.1:{etcd_port}"),
                "--listen-peer-urls".into(),
                format!("http://127.0.0.1:{peer_port}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://127.0.0.1:{peer_port}"),
                "--initial-cluster".into(),
                format!("e1=http://127.0.0.1:{peer_port}"),
                "--log-level".into(),
                "warn".into(),
            ],
            &root.join("etcd.log"),
            false,
            "KILL",
        )?;
        let http = PatroniTls::system()?.http_client("etcd")?;
        poll_until(
            "testing.etcd",
            "etcd",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                Ok(
                    match http
                        .get(format!("http://127.0.0.1:{etcd_port}/health"))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("status {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    },
                )
            },
        )
        .await
        .map_err(|e| {
            Error::new(
                e.kind(),
                "testing.etcd",
                "etcd",
                format!("{e}\n{}", etcd.log_tail()),
            )
        })?;

        let certs = if config.secure {
            Some(
                TestCerts::generate("testing.cluster", &root.join("certs")).ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, "testing.cluster", "openssl", "no openssl")
                })?,
            )
        } else {
            None
        };
        let rest_auth = config.secure.then(|| BasicAuth::new(REST_USER, PG_PASSWORD));
        let archive = root.join("archive");
        std::fs::create_dir_all(&archive).map_err(|e| io("testing.cluster", &archive, e))?;
        let mut nodes = Vec::new();
        for name in &config.names {
            let node_dir = root.join(name);
            std::fs::create_dir_all(&node_dir).map_err(|e| io("testing.cluster", &node_dir, e))?;
            let node = PatroniNode {
                name: name.clone(),
                rest_port: free_port(),
                pg_port: free_port(),
                dir: node_dir,
                https: config.secure,
                process: None,
            };
            let yml = patroni_yaml(&config.scope, &node, etcd_port, &archive, certs.as_ref());
            std::fs::write(node.dir.join("patroni.yml"), yml)
                .map_err(|e| io("testing.cluster", &node.dir, e))?;
            nodes.push(node);
        }
        give_to_postgres(&root)?;
        let mut cluster = TestCluster {
            nodes,
            etcd_port,
            certs,
            rest_auth,
            etcd: Some(etcd),
            _dir: dir,
        };
        // The first node bootstraps alone, so it is the leader; then the others clone it.
        cluster.nodes[0].start()?;
        cluster.wait_leader(Duration::from_secs(60)).await?;
        for n in cluster.nodes.iter_mut().skip(1) {
            n.start()?;
        }
        cluster.wait_healthy(Duration::from_secs(90)).await?;
        Ok(cluster)
    }

    /// The cluster's temp directory (owned by `postgres` when run as root).
    pub fn root(&self) -> &Path {
        self._dir.path()
    }

    /// The REST URLs of every node.
    pub fn rest_urls(&self) -> Vec<String> {
        self.nodes.iter().map(PatroniNode::rest_url).collect()
    }

    /// The superuser login (database `postgres`), at the first node's address.
    pub fn login(&self) -> PgTarget {
        PgTarget::new("postgres", "postgres")
            .at("127.0.0.1", self.nodes[0].pg_port)
            .password(PG_PASSWORD)
    }

    /// A [`PatroniCluster`] over this cluster, logging in to `dbname` (with the CA and credentials of a
    /// secure cluster).
    pub fn client(&self, dbname: &str) -> PatroniCluster {
        self.secured(PatroniCluster::new(
            &self.rest_urls(),
            self.login().database(dbname),
        ))
        .expect("valid test URLs and certificates")
    }

    /// A fresh, empty database `name` on the leader, dropped first when an earlier run left one.
    pub async fn fresh_database(&self, name: &str) -> Result<()> {
        let admin = super::leader_client(&self.client("postgres")).await?;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).await.map_err(|e| {
                Error::new(ErrorKind::Failed, "testing.fresh_database", name, e.to_string()).with_source(e)
            })?;
        }
        Ok(())
    }

    /// A [`Patroni`](crate::Patroni) client of this cluster (with the CA and credentials of a secure one).
    pub fn patroni(&self) -> Result<crate::Patroni> {
        let mut patroni = crate::Patroni::new(&self.rest_urls())?;
        if let Some(certs) = &self.certs {
            patroni = patroni.with_ca_file(&certs.ca)?;
        }
        if let Some(auth) = &self.rest_auth {
            patroni = patroni.with_auth(auth.clone())?;
        }
        Ok(patroni)
    }

    fn secured(&self, cluster: Result<PatroniCluster>) -> Result<PatroniCluster> {
        let mut cluster = cluster?;
        if let Some(certs) = &self.certs {
            cluster = cluster.with_patroni_ca_file(&certs.ca)?;
        }
        if let Some(auth) = &self.rest_auth {
            cluster = cluster.with_patroni_auth(auth.clone())?;
        }
        Ok(cluster)
    }

    /// A node by name.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut PatroniNode> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// Starts a node again (after [`PatroniNode::crash`]); it rejoins as a replica.
    pub fn restart_node(&mut self, name: &str) -> Result<()> {
        let node = self
            .node_mut(name)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "testing.restart_node", name, "no such node"))?;
        node.start()
    }

    /// Waits for a running leader.
    pub async fn wait_leader(&self, deadline: Duration) -> Result<String> {
        let patroni = self.patroni()?;
        poll_until(
            "testing.cluster",
            "leader",
            deadline,
            Duration::from_millis(200),
            || async {
                Ok(match patroni.leader().await {
                    Ok(l) => Ok(l.member.name),
                    Err(e) => Err(e.to_string()),
                })
            },
        )
        .await
        .map_err(|e| self.with_logs(e))
    }

    /// Waits until every node is listed, one leads, and every replica streams with no lag.
    pub async fn wait_healthy(&self, deadline: Duration) -> Result<()> {
        let patroni = self.patroni()?;
        let want = self.nodes.len();
        poll_until(
            "testing.cluster",
            "healthy",
            deadline,
            Duration::from_millis(200),
            || async {
                let ms = match patroni.members().await {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                let leaders = ms
                    .iter()
                    .filter(|m| m.role == Role::Leader && m.is_running())
                    .count();
                let replicas = ms
                    .iter()
                    .filter(|m| m.role == Role::Replica && m.is_running() && m.lag_bytes == Some(0))
                    .count();
                if !(ms.len() == want && leaders == 1 && replicas == want - 1) {
                    return Ok(Err(format!("{ms:?}")));
                }
                // Patroni can call a replica running before its WAL receiver has connected.
                let login = self.login();
                let pg = match self.secured(crate::PatroniCluster::new(&self.rest_urls(), login)) {
                    Ok(c) => match c.leader_postgres().await {
                        Ok(pg) => pg,
                        Err(e) => return Ok(Err(e.to_string())),
                    },
                    Err(e) => return Err(e),
                };
                Ok(match pg.replication().await {
                    Ok(r) if r.iter().filter(|x| x.state == "streaming").count() == want - 1 => Ok(()),
                    Ok(r) => Err(format!("pg_stat_replication: {r:?}")),
                    Err(e) => Err(e.to_string()),
                })
            },
        )
        .await
        .map_err(|e| self.with_logs(e))
    }

    fn with_logs(&self, e: Error) -> Error {
        let logs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.name, n.log_tail()))
            .collect();
        Error::new(
            e.kind(),
            e.operation(),
            e.target(),
            format!("{}\n{}", e.message(), logs.join("\n")),
        )
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Replicas first, then the leader, then etcd, so no one fails over while we tear down.
        while let Some(n) = self.nodes.pop() {
            drop(n);
        }
        if let Some(mut e) = self.etcd.take() {
            e.kill();
        }
    }
}

/// Removes cluster directories left by test binaries that have exited.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("connect-db-cluster-"));
        let owner = std::fs::read_to_string(path.join("owner.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if is_ours && owner.is_some_and(|pid| !alive(pid)) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// The REST API's username in a secure cluster (the password is [`PG_PASSWORD`]).
pub const REST_USER: &str = "connect-rest";

fn patroni_yaml(
    scope: &str,
    node: &PatroniNode,
    etcd_port: u16,
    archive: &Path,
    certs: Option<&TestCerts>,
) -> String {
    // A secure cluster: HTTPS and basic auth on the REST API (Patroni's own requests to the other members
    // trust the test CA through `ctl.cacert`), TLS on PostgreSQL.
    let (rest_tls, ctl, pg_tls) = match certs {
        Some(c) => (
            format!(
                "  certfile: {cert}\n  keyfile: {key}\n  authentication:\n    username: {REST_USER}\n    password: {PG_PASSWORD}\n",
                cert = c.server_cert.display(),
                key = c.server_key.display(),
            ),
            format!("ctl:\n  cacert: {}\n", c.ca.display()),
            format!(
                "    ssl: \"on\"\n    ssl_cert_file: {}\n    ssl_key_file: {}\n",
                c.server_cert.display(),
                c.server_key.display()
            ),
        ),
        None => Default::default(),
    };
    let dir = node.dir.display();
    let archive = archive.display();
    let bin = pg_bin("postgres");
    let bin_dir = bin.parent().map(|p| p.display().to_string()).unwrap_or_default();
    format!(
        r#"scope: {scope}
name: {name}
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
{rest_tls}{ctl}etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      remove_data_directory_on_rewind_failure: true
      remove_data_directory_on_diverged_timelines: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_log_hints: "on"
        archive_mode: "on"
        archive_command: "test ! -f {archive}/%f && cp %p {archive}/%f"
        max_connections: 50
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {dir}/data
  bin_dir: {bin_dir}
  pgpass: {dir}/pgpass
  authentication:
    superuser:
      username: postgres
      password: {pw}
    replication:
      username: replicator
      password: {pw}
  parameters:
    unix_socket_directories: '{dir}'
    shared_buffers: 32MB
    fsync: "off"
{pg_tls}  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
"#,
        name = node.name,
        rest = node.rest_port,
        pg = node.pg_port,
        pw = PG_PASSWORD,
    )
}
