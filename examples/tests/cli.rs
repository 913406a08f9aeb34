//! `connect-ops` as an operator runs it, without a server: init, config check, broken files answered with
//! their line and column and exit code 2, nothing contacted. (The command against a real server is in
//! `tests/e2e/cli.rs`.)

use std::path::{Path, PathBuf};
use std::process::Output;

use connect_examples::testing::connect_ops;

fn run(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(connect_ops())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("connect-ops runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_then_check_then_refuse_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let init = run(dir.path(), &["init"]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    assert!(dir.path().join("connect.toml").exists());

    let check = run(dir.path(), &["config", "check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("connect.toml: ok"),
        "{}",
        text(&check.stdout)
    );

    let json = run(dir.path(), &["--json", "config", "check"]);
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON object");
    assert_eq!(answer["image"], "connect");

    let again = run(dir.path(), &["init"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("--force"), "{}", text(&again.stderr));
}

#[test]
fn a_broken_file_stops_every_command_with_its_line_and_column_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("connect.toml");
    // `prod-host` would be contacted if the file were read past its error: it never is.
    std::fs::write(
        &file,
        "[server]\nhots = \"prod-host\"\n[app]\nimage = \"connect\"\n",
    )
    .unwrap();
    for args in [
        &["config", "check"][..],
        &["deploy", "v2"],
        &["status"],
        &["rollback"],
        &["lock", "break"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("connect.toml:2:1") && stderr.contains("unknown field `hots`"),
            "{stderr}"
        );
        assert!(stderr.contains("fix:"), "{stderr}");
    }
    let json = run(dir.path(), &["--json", "deploy", "v2"]);
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).expect("the error as JSON");
    assert_eq!(answer["error"]["kind"], "invalid_input", "{answer}");
    assert_eq!(answer["error"]["exit_code"], 2);
}

#[test]
fn a_missing_file_names_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("connect-ops init"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for code in ["2  bad input", "3  locked", "4  drift", "5  unavailable"] {
        assert!(help.contains(code), "{help}");
    }
}
