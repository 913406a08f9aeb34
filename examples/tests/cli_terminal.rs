//! `connect-ops backup` and `restore` as an operator sees them: in a real terminal (a tmux pane, captured)
//! a spinner with the elapsed time and the step, cleared when done so the screen keeps only the result; the
//! restore's question answered at the terminal; through a pipe, plain lines without control characters.
//! Against a real etcd + Patroni + PostgreSQL 15 cluster, with `host = "local"` (no SSH, no Docker: the
//! database commands need neither). The whole stack runs these commands in `tests/e2e/cli.rs`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use connect_db::testing::{PG_PASSWORD, TestCluster, TestClusterConfig, pg_bin};
use connect_examples::testing::{Tmux, connect_ops};

const DATABASE: &str = "connect_cli";
/// How long a pane may take to show what a step waits for.
const TMUX_DEADLINE: Duration = Duration::from_secs(120);
const PASSWORD_VAR: &str = "CONNECT_CLI_PG_PASSWORD";

fn connect_toml(cluster: &TestCluster, dir: &Path) -> String {
    let urls: Vec<String> = cluster.rest_urls().iter().map(|u| format!("{u:?}")).collect();
    let bin = pg_bin("pg_dump");
    format!(
        r#"state_dir = {state:?}
[server]
host = "local"
[database]
patroni = [{urls}]
port = {port}
user = "postgres"
password = "${{{PASSWORD_VAR}}}"
dbname = {DATABASE:?}
backup_dir = {backups:?}
pg_bin_dir = {bin:?}
[app]
image = "connect"
"#,
        state = dir.join("state").display().to_string(),
        urls = urls.join(", "),
        port = cluster.nodes[0].pg_port,
        backups = dir.join("backups").display().to_string(),
        bin = bin.parent().map(|p| p.display().to_string()).unwrap_or_default(),
    )
}

async fn rows(cluster: &TestCluster) -> i64 {
    let client = cluster
        .client(DATABASE)
        .leader_postgres()
        .await
        .unwrap()
        .connect()
        .await
        .unwrap();
    client
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0)
}

/// A line the spinner would leave behind if it were not cleared: its message.
const SPINNER_STEP: &str = "pg_dump, checksum";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_draw_a_spinner_on_a_terminal_and_plain_lines_into_a_pipe() {
    let config = TestClusterConfig {
        scope: "connect-cli-terminal".into(),
        ..TestClusterConfig::default()
    };
    let Some(cluster) = TestCluster::start("cli_terminal", config).await else {
        return;
    };
    let Some(tmux) = Tmux::start("cli_terminal", 160, 40) else {
        return;
    };
    let admin = cluster
        .client("postgres")
        .leader_postgres()
        .await
        .unwrap()
        .connect()
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .unwrap();
    let db = cluster
        .client(DATABASE)
        .leader_postgres()
        .await
        .unwrap()
        .connect()
        .await
        .unwrap();
    db.batch_execute("CREATE TABLE items (n int); INSERT INTO items SELECT generate_series(1, 3)")
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("connect.toml");
    std::fs::write(&config, connect_toml(&cluster, dir.path())).unwrap();
    let ops = connect_ops();
    let command = |args: &str| format!("{} --config {} {args}", ops.display(), config.display());

    // Through a pipe: one plain line per step, no carriage return or escape sequence.
    let out = Command::new(&ops)
        .args(["--config"])
        .arg(&config)
        .args(["backup", "--label", "plain"])
        .env(PASSWORD_VAR, PG_PASSWORD)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("-plain.dump") && stdout.contains("sha256"),
        "{stdout}"
    );
    assert!(
        stderr.contains("..   backup") && stderr.contains(SPINNER_STEP),
        "{stderr}"
    );
    assert!(
        !stderr.contains(['\r', '\u{1b}']),
        "control characters in a pipe: {stderr:?}"
    );

    // In a terminal: the dump waits for a lock the test holds, so the spinner is on screen for as long as
    // the test looks; released, the backup finishes and the spinner's line is gone.
    db.batch_execute("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let pane = tmux.run(&command("backup --label tty"), &[(PASSWORD_VAR, PG_PASSWORD)]);
    let spinning = tmux
        .wait_for(&pane, "the spinner", TMUX_DEADLINE, |s| s.contains(SPINNER_STEP))
        .await;
    let line = spinning
        .lines()
        .find(|l| l.contains(SPINNER_STEP))
        .unwrap_or_default();
    assert!(
        line.contains(" backup ") && line.split_whitespace().nth(1).is_some_and(|t| t.ends_with('s')),
        "spinner, elapsed seconds, what, step: {line:?}"
    );
    db.batch_execute("COMMIT").await.unwrap();
    let done = tmux
        .wait_for(&pane, "the backup's end", TMUX_DEADLINE, |s| s.contains("EXIT="))
        .await;
    assert!(done.contains("EXIT=0"), "{done}");
    assert!(done.contains("-tty.dump") && done.contains("sha256"), "{done}");
    assert!(
        !done.contains(SPINNER_STEP) && !done.contains("connecting"),
        "the spinner was not cleared: {done}"
    );

    // A row written after the backups, then a restore at the terminal: it says what it replaces, asks,
    // and restores once the database's name is typed.
    db.batch_execute("INSERT INTO items VALUES (4)").await.unwrap();
    assert_eq!(rows(&cluster).await, 4);
    drop(db);
    let pane = tmux.run(&command("restore"), &[(PASSWORD_VAR, PG_PASSWORD)]);
    let asked = tmux
        .wait_for(&pane, "the question", TMUX_DEADLINE, |s| {
            s.contains("type the database name")
        })
        .await;
    assert!(
        asked.contains(&format!("replaces database \"{DATABASE}\"")),
        "{asked}"
    );
    tmux.send(&pane, DATABASE);
    let done = tmux
        .wait_for(&pane, "the restore's end", TMUX_DEADLINE, |s| s.contains("EXIT="))
        .await;
    assert!(done.contains("EXIT=0"), "{done}");
    assert!(
        done.contains("-tty.dump") && done.contains("kept offline as"),
        "{done}"
    );
    assert!(
        !done.contains("checksum, pg_restore"),
        "the spinner was not cleared: {done}"
    );
    assert_eq!(rows(&cluster).await, 3, "the newest backup's rows");
}
