//! Disaster recovery (issue 17.4), as an operator runs it: a server with v2 live, continuous backups
//! (pgBackRest) and a backup set copied off the host is lost (its database killed and removed, a config file
//! gone); `connect-ops recover` puts it all back onto a FRESH stack (its own sshd, HAProxy, etcd + Patroni with
//! a database of its own, Redis; nothing deployed). First `--dry-run` (exit 0, every step listed with its
//! backups, nothing changed), then the recovery onto a server whose `state_dir` does not exist yet: the app
//! serves v2 through HAProxy, every table's rows and checksum are the lost server's, the uploads and the
//! configs are back with their modes (and owners, as root), Redis holds the keys; RTO printed. The lost
//! server's journal history is on the new one, and a full rollback to v1 (a release from before the loss)
//! and an instant rollback back to v2 work through the CLI.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use connect_core::host::HostExt;
use connect_examples::stack::{Stack, StackOptions};
use connect_examples::testing::{connect_ops_json, request};
use serde_json::Value;

use crate::common::{serial, v1_live};

/// `connect-ops --json --config <file> args…`: its exit code, its JSON lines and stderr.
fn ops(config: &Path, args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let run = connect_ops_json(
        config,
        args,
        &[("CONNECT_E2E_PG_PASSWORD", connect_db::testing::PG_PASSWORD)],
    );
    (run.code, run.lines, run.stderr)
}

fn ok(what: &str, (code, lines, stderr): (Option<i32>, Vec<Value>, String)) -> Value {
    assert_eq!(code, Some(0), "{what}: {stderr}\n{lines:?}");
    lines
        .last()
        .cloned()
        .unwrap_or_else(|| panic!("{what}: no result"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_comes_back_on_a_fresh_one_with_its_data_and_release() {
    let _one = serial().await;
    let began = Instant::now();
    let Some((old, deployer)) = v1_live(StackOptions::new("e2e_recover_old")).await else {
        return;
    };
    old.releases.ship("v2").await.expect("ship v2");
    deployer.deploy(old.release("v2")).await.expect("v2 deploys");
    let work = tempfile::tempdir().expect("temp dir");
    let offhost = work.path().join("offhost");
    let app_conf = work.path().join("etc/connect/app.conf");
    std::fs::create_dir_all(app_conf.parent().unwrap()).unwrap();
    std::fs::write(&app_conf, "# the app's rendered config\nworkers = 4\n").unwrap();
    // Configs come back with their own modes (and owners, as root): a secret 0600, a public file 0644.
    let secret_conf = work.path().join("etc/connect/secret.env");
    std::fs::write(&secret_conf, "API_TOKEN=s3cret\n").unwrap();
    std::fs::set_permissions(&secret_conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&app_conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    // What this process creates is owned by its effective user: root or not.
    let root = std::fs::metadata(work.path()).unwrap().uid() == 0;
    // nobody:nogroup, which every Debian has; only root may give a file away.
    let nobody = 65534;
    if root {
        std::os::unix::fs::chown(&secret_conf, Some(nobody), Some(nobody)).unwrap();
    }
    let configs = [app_conf.as_path(), secret_conf.as_path()];
    let uploads = old.address().dir.join("uploads");
    std::fs::create_dir_all(uploads.join("avatars")).unwrap();
    std::fs::write(uploads.join("avatars/1.png"), [137u8, 80, 78, 71, 1, 2, 3]).unwrap();
    std::fs::write(uploads.join("report.pdf"), "%PDF-1.7 quarterly").unwrap();
    // The main route counts visits in Redis: keys to come back.
    for _ in 0..3 {
        let r = request(old.http_addr(), "GET", "/", "")
            .await
            .expect("the app answers");
        assert_eq!(r.status, 200);
    }

    let old_pitr = old.cluster.pitr_config(Duration::from_secs(5));
    let old_toml = work.path().join("old.toml");
    std::fs::write(
        &old_toml,
        old.recovery_toml(&old_pitr, &old_pitr.repo_path, &offhost, &configs),
    )
    .unwrap();
    ok("pitr setup", ops(&old_toml, &["pitr", "setup"]));
    ok("pitr backup", ops(&old_toml, &["pitr", "backup"]));
    let set = ok("backup-all", ops(&old_toml, &["backup-all"]));
    let tables = old.database().table_checksums().await.expect("checksums");
    assert!(
        tables
            .iter()
            .any(|t| t.table.ends_with("customers") && t.rows > 0),
        "{tables:?}"
    );
    eprintln!("source ready after {:.1} s", began.elapsed().as_secs_f64());

    let old_history: Vec<String> = deployer
        .journal()
        .await
        .expect("the old journal")
        .history
        .iter()
        .map(|r| r.id.clone())
        .collect();

    // The server is lost: its database killed and removed, its config files gone.
    old.cluster.lose_data().await.expect("the database is lost");
    for c in configs {
        std::fs::remove_file(c).unwrap();
    }

    let new = Stack::start(StackOptions::new("e2e_recover_new"))
        .await
        .expect("a second stack");
    new.releases.ship("v2").await.expect("v2 on the fresh server");
    new.releases.ship("v1").await.expect("v1 too, for the rollback");
    // A fresh server has no state_dir: the recovery's lock and journal make it (`Host::put_file`).
    let _ = std::fs::remove_dir_all(new.state_dir());
    let new_pitr = new.cluster.pitr_config(Duration::from_secs(5));
    let new_toml = work.path().join("new.toml");
    std::fs::write(
        &new_toml,
        new.recovery_toml(&new_pitr, &old_pitr.repo_path, &offhost, &configs),
    )
    .unwrap();
    let new_uploads = new.address().dir.join("uploads");

    let plan = ok("recover --dry-run", ops(&new_toml, &["recover", "--dry-run"]));
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "configs", "database", "redis", "uploads", "journal", "deploy", "verify"
        ],
        "{plan}"
    );
    assert_eq!(plan["set"]["id"], set["manifest"]["id"], "{plan}");
    assert_eq!(plan["release"]["version"], "v2", "{plan}");
    assert_eq!(
        plan["release"]["history_records"].as_u64(),
        Some(old_history.len() as u64),
        "{plan}"
    );
    assert!(
        plan["database"]["backup"].as_str().unwrap().ends_with('F'),
        "{plan}"
    );
    assert_eq!(plan["not_fresh"], serde_json::json!([]), "{plan}");
    let journal = format!("{}/journal.json", new.state_dir());
    assert!(
        new.ssh.read_file(&journal).await.unwrap().is_none() && !app_conf.exists() && !new_uploads.exists(),
        "the dry run changed nothing"
    );

    let report = ok("recover", ops(&new_toml, &["recover", "--yes"]));
    let rto = report["took_ms"].as_u64().unwrap() as f64 / 1000.0;
    for s in report["steps"].as_array().unwrap() {
        eprintln!(
            "  {:<9} {:>6.1} s  {}",
            s["step"].as_str().unwrap(),
            s["took_ms"].as_f64().unwrap() / 1000.0,
            s["detail"].as_str().unwrap()
        );
    }
    eprintln!(
        "RTO {rto:.1} s (whole test {:.1} s)",
        began.elapsed().as_secs_f64()
    );

    let version = request(new.http_addr(), "GET", "/version", "")
        .await
        .expect("the app answers");
    assert_eq!(version.status, 200);
    assert!(
        String::from_utf8_lossy(&version.body).contains("v2"),
        "{version:?}"
    );
    let main = request(new.http_addr(), "GET", "/", "")
        .await
        .expect("the main route");
    assert_eq!(
        main.status, 200,
        "the app reaches the recovered database and Redis"
    );
    assert_eq!(
        new.database().table_checksums().await.expect("checksums"),
        tables,
        "every row is back"
    );
    assert!(report["redis_keys"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        std::fs::read(new_uploads.join("avatars/1.png")).unwrap(),
        [137u8, 80, 78, 71, 1, 2, 3]
    );
    assert_eq!(
        std::fs::read_to_string(new_uploads.join("report.pdf")).unwrap(),
        "%PDF-1.7 quarterly"
    );
    assert_eq!(
        std::fs::read_to_string(&app_conf).unwrap(),
        "# the app's rendered config\nworkers = 4\n"
    );
    let (secret, public) = (
        std::fs::metadata(&secret_conf).unwrap(),
        std::fs::metadata(&app_conf).unwrap(),
    );
    assert_eq!(
        (
            secret.permissions().mode() & 0o7777,
            public.permissions().mode() & 0o7777
        ),
        (0o600, 0o644),
        "the configs' modes are back"
    );
    if root {
        assert_eq!((secret.uid(), secret.gid()), (nobody, nobody), "and owners");
    }

    // The lost server's history is on the new one, and rolling back to a release from before the loss works.
    let (code, history, stderr) = ops(&new_toml, &["history", "-n", "100"]);
    assert_eq!(code, Some(0), "{stderr}");
    let ids: Vec<&str> = history[0]
        .as_array()
        .expect("the records")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    for id in &old_history {
        assert!(ids.contains(&id.as_str()), "{id} carried over: {ids:?}");
    }
    // The recovered server's first backup set: preflight refuses a deploy (a rollback too) without one.
    ok("backup-all after the recovery", ops(&new_toml, &["backup-all"]));
    let back = ok("rollback --to v1", ops(&new_toml, &["rollback", "--to", "v1"]));
    assert_eq!(back["outcome"]["result"], "succeeded", "{back}");
    let version = request(new.http_addr(), "GET", "/version", "")
        .await
        .expect("the app answers");
    assert!(
        String::from_utf8_lossy(&version.body).contains("v1"),
        "{version:?}"
    );
    let forward = ok("rollback", ops(&new_toml, &["rollback"]));
    assert_eq!(forward["outcome"]["result"], "succeeded", "{forward}");

    // Not fresh any more: a second recovery is refused before anything changes.
    let (code, lines, stderr) = ops(&new_toml, &["recover", "--yes"]);
    assert_eq!(code, Some(1), "{stderr}");
    let error = lines
        .iter()
        .find_map(|l| l.get("error"))
        .expect("the error as JSON");
    assert_eq!(error["operation"], "recover.check", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("not fresh")
            && error["hint"].as_str().unwrap().contains("--force"),
        "{error}"
    );
}
