//! `connect-ops` against the real stack, as an operator runs it: the stack's connect.toml, then check, deploy,
//! status, rollback, history, the lock, logs, prune, and backup → backups → restore, each a subprocess with
//! its own SSH connection; `--json` output parsed. A `state_dir` that cannot be made (a file in the way) fails
//! the deploy before anything changes, naming the directory and the fix; one that does not exist is made
//! (`tests/e2e/recover.rs` deploys and rolls back on one).

use connect_core::model::Color;
use connect_examples::stack::StackOptions;
use connect_examples::testing::connect_ops_json;

use crate::common::{assert_journal_true, assert_one_healthy_color, serial, v1_live};

/// Runs `connect-ops --json --config <file> args…`: its exit code and its JSON lines.
fn ops(config: &std::path::Path, args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>) {
    let run = connect_ops_json(
        config,
        args,
        &[("CONNECT_E2E_PG_PASSWORD", connect_db::testing::PG_PASSWORD)],
    );
    (run.code, run.lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_ops_deploys_and_rolls_back_the_real_stack_from_its_config_file() {
    let _one = serial().await;
    let Some((stack, deployer)) = v1_live(StackOptions::new("e2e_cli")).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("connect.toml");
    std::fs::write(&config, stack.address().connect_toml()).expect("write the config");

    let (code, lines) = ops(&config, &["config", "check"]);
    assert_eq!(code, Some(0), "{lines:?}");
    let (code, lines) = ops(&config, &["check"]);
    assert_eq!(code, Some(0), "preflight: {lines:?}");

    let (code, lines) = ops(&config, &["deploy", "v2"]);
    assert_eq!(code, Some(0), "{lines:?}");
    let record = lines.last().expect("the record");
    assert_eq!(record["outcome"]["result"], "succeeded", "{record}");
    assert!(
        lines.iter().any(|l| l["event"] == "traffic_switched"),
        "the events came as JSON lines first"
    );
    let (_, status) = ops(&config, &["status"]);
    assert_eq!(status[0]["live"], "green", "{status:?}");
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);

    let (code, lines) = ops(&config, &["rollback"]);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(lines.last().expect("record")["live_after"], "blue");
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Blue);

    let (code, history) = ops(&config, &["history", "-n", "2"]);
    assert_eq!(code, Some(0));
    assert_eq!(history[0].as_array().map(Vec::len), Some(2), "{history:?}");
    assert_eq!(history[0][0]["kind"], "instant_rollback");
    let (code, lock) = ops(&config, &["lock", "status"]);
    assert_eq!((code, &lock[0]), (Some(0), &serde_json::Value::Null));

    // A release that is not on the server: the deploy fails (exit 1) and traffic stays on blue.
    let (code, lines) = ops(&config, &["deploy", "v404"]);
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(lines.last().expect("the error")["error"]["kind"], "not_found");
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Blue);
    assert_journal_true(&deployer).await;

    // Logs of a color through Docker over SSH; a release no color runs is bad input.
    let (code, lines) = ops(&config, &["logs", "blue", "-n", "5"]);
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(lines.len() <= 5, "{lines:?}");
    assert!(lines.iter().all(|l| l["color"] == "blue"), "{lines:?}");
    let (code, _) = ops(&config, &["logs", "--release", "v404"]);
    assert_eq!(code, Some(2));

    // Prune everything beyond zero: the live (v1, blue) and standby (v2, green) images stay whatever N says.
    let (code, dry) = ops(&config, &["prune", "--keep", "0", "--dry-run"]);
    assert_eq!(code, Some(0), "{dry:?}");
    let (code, pruned) = ops(&config, &["prune", "--keep", "0"]);
    assert_eq!(code, Some(0), "{pruned:?}");
    let report = &pruned[0];
    assert_eq!(
        report["removed"], dry[0]["removed"],
        "the dry run said what prune did"
    );
    let image = |v: &str| format!("{}:{v}", stack.address().prefix);
    let kept: Vec<(String, String)> = report["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .map(|k| {
            (
                k["reference"].as_str().unwrap_or_default().to_string(),
                k["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(kept.contains(&(image("v1"), "live (blue)".into())), "{report}");
    assert!(
        kept.contains(&(image("v2"), "standby (green)".into())),
        "{report}"
    );
    assert!(
        !report["removed"].to_string().contains(&image("v1"))
            && !report["removed"].to_string().contains(&image("v2")),
        "{report}"
    );
    // The standby's image is there: instant rollback still works.
    let (code, lines) = ops(&config, &["rollback"]);
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);

    // Backup → list → restore: the rows written after the backup are gone, the old database kept aside.
    let seed = connect_examples::stack::runbook::seed_fingerprint(&stack)
        .await
        .expect("seed rows");
    let (code, backup) = ops(&config, &["backup", "--label", "cli"]);
    assert_eq!(code, Some(0), "{backup:?}");
    let path = backup
        .last()
        .and_then(|b| b["backup"]["path"].as_str())
        .expect("the backup's path")
        .to_string();
    assert!(
        backup.last().expect("result")["backup"]["sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );
    let (code, list) = ops(&config, &["backups"]);
    assert_eq!(code, Some(0));
    assert_eq!(list[0][0], path.as_str(), "the newest first: {list:?}");
    let leader = stack.database().leader_postgres().await.expect("leader");
    leader
        .connect()
        .await
        .expect("connect")
        .batch_execute("DELETE FROM customers")
        .await
        .expect("delete the rows");
    let (code, lines) = ops(&config, &["restore"]);
    assert_eq!(
        code,
        Some(2),
        "no terminal, no --yes: refused, untouched: {lines:?}"
    );
    let (code, restored) = ops(&config, &["restore", "--yes"]);
    assert_eq!(code, Some(0), "{restored:?}");
    let report = restored.last().expect("the report");
    assert_eq!(report["dump"], path.as_str(), "the newest backup by default");
    assert!(report["previous_kept_as"].is_string(), "{report}");
    let after = connect_examples::stack::runbook::seed_fingerprint(&stack)
        .await
        .expect("rows after the restore");
    assert_eq!(after, seed, "the backup's rows are back");
    assert_journal_true(&deployer).await;

    // A state_dir under a file cannot be made: the deploy stops at the lock, says where and how to fix it.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "a file").expect("the file in the way");
    let blocked = dir.path().join("blocked.toml");
    let state = format!("{}/state", blocker.display());
    let text = stack.address().connect_toml().replacen(
        &format!("state_dir = {:?}", stack.state_dir()),
        &format!("state_dir = {state:?}"),
        1,
    );
    assert!(text.contains(&state), "the state_dir replaced");
    std::fs::write(&blocked, text).expect("write the config");
    let (code, lines) = ops(&blocked, &["deploy", "v2"]);
    assert_eq!(code, Some(1), "{lines:?}");
    let error = &lines.last().expect("the error")["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains(&state))
            && error["hint"].as_str().is_some_and(|h| h.contains("install -d")),
        "{error}"
    );
    assert_eq!(assert_one_healthy_color(&stack, &deployer).await, Color::Green);
}
