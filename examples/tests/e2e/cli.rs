//! `connect-ops` against the real stack, as an operator runs it: the stack's connect.toml, then check, deploy,
//! status, rollback, history and the lock, each a subprocess with its own SSH connection; `--json` output
//! parsed.

use connect_core::model::Color;
use connect_examples::stack::StackOptions;
use connect_examples::testing::connect_ops;

use crate::common::{assert_journal_true, assert_one_healthy_color, serial, v1_live};

/// Runs `connect-ops --json --config <file> args…`: its exit code and its JSON lines.
fn ops(config: &std::path::Path, args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = std::process::Command::new(connect_ops())
        .arg("--json")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("CONNECT_E2E_PG_PASSWORD", connect_db::testing::PG_PASSWORD)
        .env_remove("RUST_LOG")
        .output()
        .expect("connect-ops runs");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {l}")))
        .collect();
    if !out.status.success() {
        eprintln!("{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code(), lines)
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
}
