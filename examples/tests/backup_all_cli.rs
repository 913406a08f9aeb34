//! `connect-ops backup-all` as a timer runs it, on this machine (`host = "local"`) with a real Redis, an
//! uploads directory, a journal and a config file: a set with every part and its manifest, copied to
//! `copy_to`; the next run copies only the changed upload on the server and sends only the changed files off
//! it, and keeps one set; `check` (preflight) passes the backup age, and fails it once the policy is shorter
//! than the set's age. Takes ~3 s (Redis, three runs of the command).

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use connect_core::Cache;
use connect_core::backup_set::set_id;
use connect_core::wait::poll_until;
use connect_db::testing::TestRedis;
use connect_examples::testing::connect_ops_in;
use serde_json::Value;

/// The JSON line of the result that has `key` (progress events come before it, an error after).
fn json(out: &Output, key: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get(key).is_some())
        .unwrap_or_else(|| {
            panic!(
                "no {key} on stdout: {stdout}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn config(d: &Path, redis_port: u16, max_age: &str) -> String {
    format!(
        r#"state_dir = "{d}/state"
[server]
host = "local"
[database]
patroni = ["http://127.0.0.1:9"]
[redis]
port = {redis_port}
[app]
image = "connect"
[backup_all]
dir = "{d}/sets"
keep = 1
max_age = "{max_age}"
uploads_dir = "{d}/uploads"
configs = ["{d}/etc/haproxy.cfg"]
copy_to = "{d}/offhost"
"#,
        d = d.display()
    )
}

#[tokio::test]
async fn backup_all_takes_every_part_copies_only_changes_and_feeds_preflight() {
    let Some(redis) = TestRedis::start("backup_all_cli", None, false).await else {
        return;
    };
    if connect_core::testing::require_program("backup_all_cli", "rsync", &[]).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for dir in ["uploads/avatars", "state", "etc"] {
        std::fs::create_dir_all(d.join(dir)).unwrap();
    }
    std::fs::write(d.join("uploads/avatars/1.png"), [137u8, 80, 78, 71]).unwrap();
    std::fs::write(d.join("uploads/report.pdf"), "%PDF-1.7").unwrap();
    std::fs::write(d.join("state/journal.json"), "{\"format\":1}").unwrap();
    std::fs::write(d.join("etc/haproxy.cfg"), "global\n").unwrap();
    std::fs::write(d.join("connect.toml"), config(d, redis.port, "1h")).unwrap();
    redis.client().ping().await.expect("redis answers");

    let out = connect_ops_in(d, &["--json", "backup-all"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = json(&out, "manifest");
    let parts: Vec<(String, u64)> = first["manifest"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["files"].as_u64().unwrap(),
            )
        })
        .collect();
    let named = |n: &str| parts.iter().find(|(p, _)| p == n).map(|(_, f)| *f);
    assert_eq!(
        (
            named("redis"),
            named("uploads"),
            named("journal"),
            named("configs")
        ),
        (Some(1), Some(2), Some(1), Some(1)),
        "{first}"
    );
    let files = first["manifest"]["files"].as_array().unwrap();
    assert!(files.iter().all(|f| f["sha256"].as_str().unwrap().len() == 64));
    assert_eq!(first["copy"]["files_sent"], 5, "{first}");
    let id = first["manifest"]["id"].as_str().unwrap().to_string();
    assert!(d.join("offhost").join(&id).join("manifest.json").is_file());

    // One upload changed: the server copies it alone, the copy sends it and the new Redis dump.
    std::fs::write(d.join("uploads/report.pdf"), "%PDF-1.7 v2").unwrap();
    poll_until(
        "test.clock",
        &id,
        Duration::from_secs(3),
        Duration::from_millis(20),
        || async {
            let now = set_id(SystemTime::now());
            Ok(if now > id { Ok(()) } else { Err(now) })
        },
    )
    .await
    .unwrap();
    let out = connect_ops_in(d, &["--json", "backup-all"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second = json(&out, "manifest");
    assert_eq!(second["uploads"]["files_copied"], 1, "{second}");
    assert_eq!(second["copy"]["files_sent"], 2, "{second}");
    assert_eq!(second["copy"]["files_linked"], 3, "{second}");
    assert_eq!(second["pruned"], serde_json::json!([id]), "keep = 1");

    // Preflight: the set is fresh enough for one hour, not for one second.
    let check = |max_age: &str| {
        std::fs::write(d.join("connect.toml"), config(d, redis.port, max_age)).unwrap();
        let report = json(&connect_ops_in(d, &["--json", "check"]), "checks");
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "backup set")
            .cloned()
            .unwrap_or_else(|| panic!("no backup set check: {report}"))
    };
    let fresh = check("1h");
    assert_eq!(fresh["status"], "pass", "{fresh}");
    let second_id = second["manifest"]["id"].as_str().unwrap().to_string();
    poll_until(
        "test.age",
        "set",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async {
            let c = check("1s");
            Ok(if c["status"] == "fail" {
                Ok(c)
            } else {
                Err(c.to_string())
            })
        },
    )
    .await
    .map(|c| assert!(c["detail"].as_str().unwrap().contains(&second_id), "{c}"))
    .unwrap();
}

/// `recover` refuses bad input with the other commands' exit codes and a hint, changing nothing: no copy
/// directory (2), no set in it (1, naming backup-all), an unknown `--set` (1, listing the sets), and a
/// repository that is not there (1, naming the backup disk). The set is written by hand: only its manifest
/// and journal are read before the repository is. ~1 s (pgBackRest's `info` once).
#[tokio::test]
async fn recover_refuses_bad_input_before_changing_anything() {
    let Some(_) = connect_core::testing::require_program("recover_bad_input", "pgbackrest", &[]) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let toml = |extra: &str| {
        format!(
            "state_dir = \"{d}/state\"\n[server]\nhost = \"local\"\n[database]\npatroni = [\"http://127.0.0.1:9\"]\n\
             [app]\nimage = \"connect\"\n[backup_all]\ndir = \"{d}/sets\"\n{extra}",
            d = d.display()
        )
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    std::fs::write(d.join("connect.toml"), toml("")).unwrap();
    let out = connect_ops_in(d, &["recover", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--from"), "{}", stderr(&out));

    std::fs::create_dir_all(d.join("offhost")).unwrap();
    let from = d.join("offhost").display().to_string();
    let out = connect_ops_in(d, &["recover", "--dry-run", "--from", &from]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no backup set") && stderr(&out).contains("backup-all"),
        "{}",
        stderr(&out)
    );

    // A set with a journal whose live release is v2.
    let id = "20261206T081500Z";
    let journal = r#"{"format":1,"live":"blue","slots":{"blue":{"release":{"version":"v2","image":"connect:v2"},"container":"connect_app1","since_unix_ms":0}},"history":[]}"#;
    let journal_path = format!("journal{}/state/journal.json", d.display());
    let set = d.join("offhost").join(id);
    std::fs::create_dir_all(set.join(&journal_path).parent().unwrap()).unwrap();
    std::fs::write(set.join(&journal_path), journal).unwrap();
    let manifest = serde_json::json!({
        "version": 1, "id": id, "taken_at_unix": 1_796_544_900u64, "taken_at": "2026-12-06T08:15:00Z",
        "took_ms": 1, "source": "local", "missing": [],
        "parts": [{"name": "journal", "files": 1, "bytes": journal.len()}],
        "files": [{"path": journal_path, "bytes": journal.len(), "sha256": "0".repeat(64)}],
    });
    std::fs::write(set.join("manifest.json"), manifest.to_string()).unwrap();

    let out = connect_ops_in(
        d,
        &[
            "recover",
            "--dry-run",
            "--from",
            &from,
            "--set",
            "20200101T000000Z",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(id), "the sets are listed: {}", stderr(&out));

    // [database.pitr] whose repository is not there.
    let pitr = format!(
        "[database.pitr]\nrepo = \"{d}/no-backup-disk\"\nstate_dir = \"{d}/pgbackrest\"\nrun_as = []\n\
         [[database.pitr.nodes]]\nmember = \"patroni1\"\ndata_dir = \"{d}/data\"\nport = 5432\n",
        d = d.display()
    );
    std::fs::write(d.join("connect.toml"), toml(&pitr)).unwrap();
    let out = connect_ops_in(d, &["recover", "--dry-run", "--from", &from]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no pgBackRest backup") && stderr(&out).contains("backup disk"),
        "{}",
        stderr(&out)
    );
    assert!(
        !d.join("no-backup-disk").exists() && !d.join("state").exists(),
        "nothing was made"
    );
}
