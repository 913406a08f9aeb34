//! `connect-ops` as an operator runs it, without a server: init, config check, broken files answered with
//! their line and column and exit code 2, nothing contacted. (The command against a real server is in
//! `tests/e2e/cli.rs`.)

use std::path::{Path, PathBuf};

use connect_examples::testing::{connect_ops, connect_ops_in};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_then_check_then_refuse_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let init = connect_ops_in(dir.path(), &["init"]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    assert!(dir.path().join("connect.toml").exists());

    let check = connect_ops_in(dir.path(), &["config", "check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("connect.toml: ok"),
        "{}",
        text(&check.stdout)
    );

    let json = connect_ops_in(dir.path(), &["--json", "config", "check"]);
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON object");
    assert_eq!(answer["image"], "connect");

    let again = connect_ops_in(dir.path(), &["init"]);
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
        &["audit", "--fix"],
    ] {
        let out = connect_ops_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("connect.toml:2:1") && stderr.contains("unknown field `hots`"),
            "{stderr}"
        );
        assert!(stderr.contains("fix:"), "{stderr}");
    }
    let json = connect_ops_in(dir.path(), &["--json", "deploy", "v2"]);
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).expect("the error as JSON");
    assert_eq!(answer["error"]["kind"], "invalid_input", "{answer}");
    assert_eq!(answer["error"]["exit_code"], 2);
}

#[test]
fn a_missing_file_names_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = connect_ops_in(dir.path(), &["status"]);
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
    let out = connect_ops_in(dir.path(), &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for code in ["2  bad input", "3  locked", "4  drift", "5  unavailable"] {
        assert!(help.contains(code), "{help}");
    }
}

/// Every subcommand, as the parser knows it (so a new one is checked below without editing this test).
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    connect_examples::ops::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

/// Runs `program args…` with `input` on stdin; its exit status and stderr.
fn shell_check(program: &str, args: &[&str], input: &[u8]) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/test.sh installs it): {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), text(&out.stderr))
}

#[test]
fn completions_for_bash_zsh_and_fish_parse_in_their_shells_and_name_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let names = subcommands();
    assert!(names.len() >= 16, "{names:?}");
    for (shell, check) in [
        ("bash", &["bash", "-n"][..]),
        ("zsh", &["zsh", "-n"]),
        ("fish", &["fish", "--no-execute"]),
    ] {
        let out = connect_ops_in(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell} completion lacks {name}");
        }
        let (ok, stderr) = shell_check(check[0], &check[1..], &out.stdout);
        assert!(ok, "{shell} rejects its completion script: {stderr}");
    }
    let out = connect_ops_in(dir.path(), &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "an unknown shell is bad input");
}

#[test]
fn the_man_page_renders_and_lists_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = connect_ops_in(dir.path(), &["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(".ie"),
        "roff: {}",
        text(&out.stdout)
    );
    // Rendered by man itself, as a reader sees it.
    let rendered = std::process::Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "120")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&out.stdout)?;
            child.wait_with_output()
        })
        .expect("man runs (scripts/test.sh installs man-db)");
    assert!(rendered.status.success());
    // man's pager-less output emboldens by overstriking (`N\x08N`): keep the last of each pair.
    let mut page = String::new();
    for c in text(&rendered.stdout).chars() {
        if c == '\u{8}' {
            page.pop();
        } else {
            page.push(c);
        }
    }
    let section = page
        .split("SUBCOMMANDS")
        .nth(1)
        .unwrap_or_else(|| panic!("no SUBCOMMANDS section: {page}"));
    for name in subcommands() {
        assert!(
            section.contains(&format!("connect-ops-{name}(1)")),
            "the page does not list {name}: {section}"
        );
    }
    assert!(page.contains("Exit codes"), "{page}");

    let pages = dir.path().join("man");
    let out = connect_ops_in(dir.path(), &["man", "--dir", "man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in subcommands() {
        assert!(
            pages.join(format!("connect-ops-{name}.1")).exists(),
            "no page for {name}"
        );
    }
}

#[test]
fn the_new_subcommands_refuse_bad_input_with_exit_code_2_before_contacting_anything() {
    let dir = tempfile::tempdir().unwrap();
    // The template names `your-server`, which does not resolve: reaching it would be exit 5, not 2.
    assert!(connect_ops_in(dir.path(), &["init"]).status.success());
    for (args, says) in [
        (&["restore"][..], "--yes"),
        (&["restore", "connect-x.dump"], "connect-x.dump"),
        (&["backup", "--label", "../etc"], "a label is"),
        (&["logs", "purple"], "possible values"),
        (&["logs", "blue", "--release", "v1"], "cannot be used with"),
        (&["logs", "-n", "many"], "invalid value"),
        (&["prune", "--keep", "-1"], "unexpected argument"),
        (&["audit", "--fail-on", "severe"], "not a severity"),
        (&["audit", "--format", "xml"], "possible values"),
        // The template leaves [backup_all] commented out: nothing is taken, and the fix is named.
        (&["backup-all"], "add [backup_all]"),
    ] {
        let out = connect_ops_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // Not at a terminal, a restore without --yes says what it would replace and how to go ahead.
    let out = connect_ops_in(dir.path(), &["--json", "restore"]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the error as JSON");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("\"connect\"") && message.contains("your-server"),
        "{answer}"
    );
}

#[test]
fn recover_db_and_pitr_refuse_before_contacting_anything() {
    let dir = tempfile::tempdir().unwrap();
    assert!(connect_ops_in(dir.path(), &["init"]).status.success());
    for (args, says) in [
        (&["recover-db"][..], "required"),
        (
            &["recover-db", "--latest", "--time", "2026-12-06 08:00:00+00"],
            "cannot be used with",
        ),
        (
            &["recover-db", "--lsn", "0/3000090", "--latest"],
            "--restore-point",
        ),
        // Not at a terminal: nothing recovers without --yes, and the question says what would be lost.
        (&["recover-db", "--latest"], "pass --yes to recover-db"),
        (&["recover-db", "--latest", "--yes"], "[database.pitr]"),
        (&["pitr", "info"], "[database.pitr]"),
    ] {
        let out = connect_ops_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = connect_ops_in(dir.path(), &["recover-db", "--restore-point", "connect-d1"]);
    assert!(
        text(&out.stderr).contains("every database")
            && text(&out.stderr).contains("restore point connect-d1"),
        "{}",
        text(&out.stderr)
    );
    // A section whose path would break out of archive_command's quotes is refused at load, with its line.
    let config = dir.path().join("connect.toml");
    let mut body = std::fs::read_to_string(&config).unwrap();
    body.push_str(
        "\n[database.pitr]\nrepo = \"/mnt/backup/it's\"\n[[database.pitr.nodes]]\nmember = \"patroni1\"\ndata_dir = \"/var/lib/postgresql/15/main\"\nport = 5432\n",
    );
    std::fs::write(&config, body).unwrap();
    let out = connect_ops_in(dir.path(), &["pitr", "info"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("database.pitr"),
        "{}",
        text(&out.stderr)
    );
}

/// A server where nothing of the deployment answers (host = "local", HAProxy's socket and every port dead):
/// only the machine's Docker Engine is asked, read-only (connecting to it is eager), for containers that do
/// not exist; each source is "not read".
fn dead_server(dir: &Path) -> PathBuf {
    // A loopback port nothing listens on.
    let dead = connect_core::testing::free_port();
    let config = dir.join("connect.toml");
    let d = dir.display();
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{d}/state"
[server]
host = "local"
[haproxy]
admin_socket = "{d}/admin.sock"
[database]
patroni = ["http://127.0.0.1:{dead}"]
port = {dead}
user = "postgres"
password = "x"
dbname = "connect"
[redis]
port = {dead}
[app]
image = "connect"
"#
        ),
    )
    .unwrap();
    config
}

#[test]
fn watch_into_a_pipe_prints_one_line_per_sample_and_stops_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = dead_server(dir.path());
    let config = config.to_str().unwrap();

    let once = connect_ops_in(
        dir.path(),
        &["--config", config, "watch", "--once", "--interval", "100ms"],
    );
    assert!(once.status.success(), "{}", text(&once.stderr));
    let line = text(&once.stdout);
    assert_eq!(line.lines().count(), 1, "{line}");
    for part in [
        "live none standby none",
        "blue not read",
        "not read: router.figures",
        "cache.figures",
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
    assert!(!line.trim_end().chars().any(char::is_control), "{line:?}");

    let mut watch = std::process::Command::new(connect_ops())
        .args(["--config", config, "--json", "watch", "--interval", "100ms"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("connect-ops runs");
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut sequences = Vec::new();
    for line in lines.by_ref().take(3) {
        let snapshot: serde_json::Value =
            serde_json::from_str(&line.unwrap()).expect("a JSON snapshot per line");
        sequences.push(snapshot["sequence"].as_u64().unwrap());
    }
    assert_eq!(sequences, [1, 2, 3], "one line per sample");
    connect_core::testing::send_signal(watch.id(), connect_core::testing::Signal::SIGTERM).unwrap();
    let status = watch.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM ends the view normally");

    let bad = connect_ops_in(dir.path(), &["--config", config, "watch", "--interval", "0s"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).contains("--interval 1s"),
        "the fix: {}",
        text(&bad.stderr)
    );
}
