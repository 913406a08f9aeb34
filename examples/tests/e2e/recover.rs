//! Disaster recovery (issue 17.4), as an operator runs it: a server with v2 live, continuous backups
//! (pgBackRest) and a backup set copied off the host is lost (its database killed and removed, a config file
//! gone); `connect-ops recover` puts it all back onto a FRESH stack (its own sshd, HAProxy, etcd + Patroni with
//! a database of its own, Redis; nothing deployed). First `--dry-run` (exit 0, every step listed with its
//! backups, nothing changed), then the recovery: the app serves v2 through HAProxy, every table's rows and
//! checksum are the lost server's, the uploads and the config are back, Redis holds the keys; RTO printed.

use std::path::Path;
use std::time::{Duration, Instant};

use connect_core::host::HostExt;
use connect_db::pitr::PitrConfig;
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

/// The stack's connect.toml with continuous backups (`repo`: the lost server's repository), backup sets
/// (copied to `offhost`), the config file kept in them, and how its Redis starts.
fn toml(stack: &Stack, pitr: &PitrConfig, repo: &str, offhost: &Path, app_conf: &Path) -> String {
    let a = stack.address();
    let start = stack.redis.start_command().argv;
    let base = a
        .connect_toml()
        .replacen("[redis]\n", &format!("[redis]\nstart_command = {start:?}\n"), 1);
    let mut s = format!(
        "{base}\n[database.pitr]\nrepo = {repo:?}\nstate_dir = {state:?}\narchive_timeout = \"5s\"\nrun_as = {run_as:?}\n\
         etcd = \"http://127.0.0.1:{etcd}\"\n",
        state = pitr.state_dir,
        run_as = pitr.run_as,
        etcd = stack.cluster.etcd_port,
    );
    for n in &pitr.nodes {
        s.push_str(&format!(
            "[[database.pitr.nodes]]\nmember = {:?}\ndata_dir = {:?}\nport = {}\nsocket_dir = {:?}\n",
            n.member, n.data_dir, n.port, n.socket_dir
        ));
    }
    s.push_str(&format!(
        "[backup_all]\ndir = {sets:?}\nuploads_dir = {uploads:?}\nconfigs = [{conf:?}]\ncopy_to = {off:?}\n",
        sets = a.dir.join("sets").display().to_string(),
        uploads = a.dir.join("uploads").display().to_string(),
        conf = app_conf.display().to_string(),
        off = offhost.display().to_string(),
    ));
    s
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
        toml(&old, &old_pitr, &old_pitr.repo_path, &offhost, &app_conf),
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

    // The server is lost: its database killed and removed, its config file gone.
    old.cluster.lose_data().await.expect("the database is lost");
    std::fs::remove_file(&app_conf).unwrap();

    let new = Stack::start(StackOptions::new("e2e_recover_new"))
        .await
        .expect("a second stack");
    new.releases.ship("v2").await.expect("v2 on the fresh server");
    let new_pitr = new.cluster.pitr_config(Duration::from_secs(5));
    let new_toml = work.path().join("new.toml");
    std::fs::write(
        &new_toml,
        toml(&new, &new_pitr, &old_pitr.repo_path, &offhost, &app_conf),
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
        ["configs", "database", "redis", "uploads", "deploy", "verify"],
        "{plan}"
    );
    assert_eq!(plan["set"]["id"], set["manifest"]["id"], "{plan}");
    assert_eq!(plan["release"]["version"], "v2", "{plan}");
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
