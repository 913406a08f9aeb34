//! `connect-ops` with `[swarm]` in connect.toml (issue 18.2): deploy v1, deploy v2, rollback and status as
//! subprocesses against a real two-node swarm (`TestSwarm`), a real HAProxy in the manager's network namespace
//! with a server per node and color (as in `swarm_deploy.rs`), a Patroni cluster and Redis. `[server]` is the
//! manager reached the product's way, over SSH: a real sshd runs inside the manager's namespace (its engine's
//! socket, HAProxy's admin socket and the journal are files there; Patroni, PostgreSQL and Redis are
//! forwarded into the namespace on their loopback ports, as the server sees them). The worker is a
//! `[[swarm.nodes]]` entry named `worker`, reached over SSH the same way (an sshd in its namespace taking the
//! same key; known_hosts lists both); both nodes take tasks. With `CONNECT_REAL_TESTS=1` a missing program
//! fails the test.

use std::path::Path;

use connect_db::testing::{PG_PASSWORD, TestCluster, TestClusterConfig};
use connect_docker::testing::test_health_probe;
use connect_examples::testing::{RedisServer, SwarmStage, connect_ops_json};
use connect_haproxy::testing::require_haproxy;

const PASSWORD_VAR: &str = "CONNECT_SWARM_CLI_PG_PASSWORD";

/// Runs `connect-ops --json --config <file> args…`: its exit code and its JSON lines.
fn ops(config: &Path, args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>) {
    let run = connect_ops_json(config, args, &[(PASSWORD_VAR, PG_PASSWORD)]);
    (run.code, run.lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_ops_deploys_rolls_back_and_reports_status_on_a_swarm_from_connect_toml() {
    let test = "swarm_cli";
    let Some(haproxy_bin) = require_haproxy(test) else {
        return;
    };
    let config = TestClusterConfig {
        scope: "connect-swarm-cli".into(),
        ..TestClusterConfig::default()
    };
    let Some(cluster) = TestCluster::start(test, config).await else {
        return;
    };
    let Some(redis) = RedisServer::start(test).await.unwrap() else {
        return;
    };
    let Some(stage) = SwarmStage::start(test, &haproxy_bin).await else {
        return;
    };
    let SwarmStage {
        haproxy,
        manager,
        scope,
        swarm,
        ..
    } = &stage;

    let dir = tempfile::tempdir().unwrap();
    // The journal's directory exists on a provisioned server (the runbook's `mkdir -p`).
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let probe = test_health_probe();
    let redis_port = redis
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/0")
        .to_string();
    let urls: Vec<String> = cluster.rest_urls().iter().map(|u| format!("{u:?}")).collect();
    // What the manager must see of this machine on its own loopback: every Patroni node and Redis.
    let mut ports: Vec<u16> = cluster
        .nodes
        .iter()
        .flat_map(|n| [n.rest_port, n.pg_port])
        .collect();
    ports.push(redis_port.parse().expect("redis port"));
    let Some(ssh) = stage.ssh_into_manager(test, &ports).await else {
        return;
    };
    // The worker is reached over SSH too, with the same key: its entry says only where.
    let Some(worker_ssh) = stage.ssh_into_worker(test).await else {
        return;
    };
    worker_ssh.authorize(&ssh).expect("the worker takes the key");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        ssh.known_hosts_line() + &worker_ssh.known_hosts_line(),
    )
    .unwrap();
    let file = dir.path().join("connect.toml");
    std::fs::write(
        &file,
        format!(
            r#"state_dir = {state:?}
[server]
host = "127.0.0.1"
port = {ssh_port}
user = {ssh_user:?}
key_file = {ssh_key:?}
known_hosts = {known_hosts:?}
ssh_config = false
[haproxy]
admin_socket = {admin:?}
[database]
patroni = [{urls}]
port = {pg_port}
user = "postgres"
password = "${{{PASSWORD_VAR}}}"
dbname = "postgres"
check_query = "SELECT 1"
[redis]
port = {redis_port}
[docker]
health_command = {health:?}
health_interval = "300ms"
[app]
name = {prefix:?}
image = {prefix:?}
stop_grace = "2s"
[slots.blue]
container = "{prefix}_app1"
server = "app1"
port = 3000
[slots.green]
container = "{prefix}_app2"
server = "app2"
port = 3001
[policy]
drain_deadline = "10s"
lock_lease = "15s"  # renewed over SSH, a third of it per attempt: room for a loaded machine (5 s lost it once)
disk_paths = [{disk:?}]
[swarm]
manager_socket = {manager:?}
[[swarm.nodes]]
name = "worker"
host = "127.0.0.1"
port = {worker_ssh_port}
socket = {worker:?}
"#,
            ssh_port = ssh.proxy.port(),
            ssh_user = ssh.sshd.user(),
            ssh_key = ssh.sshd.client_key().display().to_string(),
            known_hosts = known_hosts.display().to_string(),
            worker_ssh_port = worker_ssh.proxy.port(),
            state = dir.path().join("state").display().to_string(),
            admin = haproxy.admin_socket.display().to_string(),
            urls = urls.join(", "),
            pg_port = cluster.nodes[0].pg_port,
            health = probe.command,
            prefix = scope.prefix,
            disk = dir.path().display().to_string(),
            manager = swarm.manager_socket(),
            worker = swarm.worker_socket().expect("the worker runs"),
        ),
    )
    .unwrap();

    let t = std::time::Instant::now();
    let config = file.clone();
    let results = tokio::task::spawn_blocking(move || {
        let deploy_v1 = ops(&config, &["deploy", "v1"]);
        let deploy_v2 = ops(&config, &["deploy", "v2"]);
        let rollback = ops(&config, &["rollback"]);
        let status = ops(&config, &["status"]);
        [deploy_v1, deploy_v2, rollback, status]
    })
    .await
    .unwrap();
    let [
        (code_v1, v1),
        (code_v2, v2),
        (code_back, back),
        (code_status, status),
    ] = results;
    assert_eq!(code_v1, Some(0), "{v1:?}");
    assert_eq!(v1.last().expect("record")["outcome"]["result"], "succeeded");
    assert_eq!(code_v2, Some(0), "{v2:?}");
    assert_eq!(v2.last().expect("record")["live_after"], "green", "{v2:?}");
    assert_eq!(code_back, Some(0), "{back:?}");
    assert_eq!(back.last().expect("record")["live_after"], "blue", "{back:?}");
    // Status exits 0 only when the journal, the router and the services agree.
    assert_eq!(code_status, Some(0), "{status:?}");
    assert_eq!(status[0]["live"], "blue", "{status:?}");
    // The colors are Swarm services, not plain containers; requests through HAProxy reach the live one.
    let services = manager.api().list_services(None).await.unwrap();
    let names: Vec<String> = services
        .into_iter()
        .filter_map(|s| s.spec.and_then(|s| s.name))
        .collect();
    assert!(names.contains(&format!("{}_app1", scope.prefix)), "{names:?}");
    let answer = swarm
        .http_get("127.0.0.1", haproxy.http_addr().port(), "/api/health")
        .await;
    assert!(matches!(answer, Ok((200, _))), "{answer:?}");
    // Every command went through sshd in the manager's namespace, and the database and cache were reached
    // from there.
    assert!(
        ssh.sshd.accepted_connections() >= 4,
        "one SSH connection per command"
    );
    assert!(
        worker_ssh.sshd.accepted_connections() >= 4,
        "the worker's engine reached over SSH by every command: {}",
        worker_ssh.sshd.accepted_connections()
    );
    assert!(
        ssh.forwarded() > 0,
        "the server's view of the database and cache was used"
    );
    eprintln!(
        "connect-ops deploy, deploy, rollback, status on the swarm: {:.1} s",
        t.elapsed().as_secs_f64()
    );
}
