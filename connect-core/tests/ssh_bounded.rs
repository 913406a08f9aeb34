//! Every program run over SSH is bounded: a deadline per command (or the host's default), the remote
//! program killed when the caller gives up or drops the call, and output read into memory capped. Against
//! Debian's OpenSSH server; the remote processes are looked for with `pgrep` through the same connection.
#![cfg(feature = "ssh")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use connect_core::ErrorKind;
use connect_core::host::{Command, Host};
use connect_core::ssh::SshHost;
use connect_core::testing::Sshd;
use connect_core::wait::poll_until;

async fn server(test: &str) -> Option<(Sshd, SshHost)> {
    let sshd = Sshd::start(test).await?;
    let host = SshHost::connect(sshd.config()).await.expect("connect to sshd");
    Some((sshd, host))
}

/// A `sleep` no other process runs: its duration is the marker `pgrep -f` looks for.
fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "4242.{}{:03}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A shell that forks `sleep` (and waits), so killing only the shell would leave the sleep behind.
fn sleeper(marker: &str) -> Command {
    Command::new(["sh", "-c", &format!("sleep {marker}; echo woke")])
}

/// Whether a process whose command line contains `pattern` runs on the server. The bracket keeps
/// `pgrep` from matching its own command line.
async fn running(host: &SshHost, pattern: &str) -> connect_core::Result<bool> {
    let regex = format!("[{}]{}", &pattern[..1], &pattern[1..]).replace('.', "\\.");
    let out = host.run(&Command::new(["pgrep", "-f", &regex])).await?;
    match out.status {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        other => panic!(
            "pgrep failed ({other:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

async fn wait_until(host: &SshHost, pattern: &str, present: bool) {
    poll_until(
        "test.pgrep",
        pattern,
        Duration::from_secs(10),
        Duration::from_millis(20),
        || async move {
            Ok(if running(host, pattern).await? == present {
                Ok(())
            } else {
                Err(format!("`{pattern}` running: {}", !present))
            })
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_dropped_run_kills_the_remote_program() {
    let Some((_sshd, host)) = server("dropped_run").await else {
        return;
    };
    let m = marker();
    let call = tokio::spawn({
        let host = host.clone();
        let cmd = sleeper(&m);
        async move { host.run(&cmd).await }
    });
    wait_until(&host, &format!("sleep {m}"), true).await;
    call.abort();
    assert!(call.await.expect_err("aborted").is_cancelled());
    wait_until(&host, &format!("sleep {m}"), false).await;
    assert_eq!(host.connections_opened(), 1);
}

#[tokio::test]
async fn a_dropped_streaming_run_kills_the_remote_program() {
    let Some((_sshd, host)) = server("dropped_streaming_run").await else {
        return;
    };
    let m = marker();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let cmd = Command::new(["sh", "-c", &format!("echo started; sleep {m}; echo woke")]);
    let call = tokio::spawn({
        let host = host.clone();
        async move { host.run_streaming(&cmd, tx).await }
    });
    assert_eq!(rx.recv().await.expect("started").data, b"started\n");
    wait_until(&host, &format!("sleep {m}"), true).await;
    call.abort();
    let _ = call.await;
    wait_until(&host, &format!("sleep {m}"), false).await;
}

#[tokio::test]
async fn a_program_past_its_deadline_is_killed_and_reported_as_a_timeout() {
    let Some((sshd, host)) = server("deadline").await else {
        return;
    };
    let m = marker();
    let started = Instant::now();
    let e = host
        .run(&sleeper(&m).timeout(Duration::from_millis(300)))
        .await
        .expect_err("past its deadline");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        e.to_string().contains("300ms") && e.to_string().contains("killed") && e.to_string().contains("fix:"),
        "{e}"
    );
    wait_until(&host, &format!("sleep {m}"), false).await;

    // The host's default deadline applies to a command without its own, streamed or not.
    let short = SshHost::connect(sshd.config().command_timeout(Duration::from_millis(300)))
        .await
        .expect("connect");
    let m = marker();
    let e = short.run(&sleeper(&m)).await.expect_err("past the default");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    let e = short
        .run_streaming(&sleeper(&m), tx)
        .await
        .expect_err("streaming past the default");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    wait_until(&host, &format!("sleep {m}"), false).await;
    // A command's own deadline overrides the default.
    let out = short
        .run(&Command::new(["sh", "-c", "sleep 0.5; echo done"]).timeout(Duration::from_secs(30)))
        .await
        .expect("within its own deadline");
    assert_eq!(out.stdout_text(), "done\n");
}

#[tokio::test]
async fn output_past_the_cap_is_refused_not_buffered_and_streaming_is_not_capped() {
    let Some((sshd, _host)) = server("output_cap").await else {
        return;
    };
    const CAP: usize = 1024 * 1024;
    let host = SshHost::connect(sshd.config().max_output(CAP))
        .await
        .expect("connect");
    let out = host
        .run(&Command::new(["head", "-c", &CAP.to_string(), "/dev/zero"]))
        .await
        .expect("exactly the cap");
    assert_eq!(out.stdout.len(), CAP);

    // Endless output: refused once past the cap, and the program is stopped.
    let m = marker();
    let endless = Command::new(["sh", "-c", &format!("yes {m} >&2")]);
    let e = host.run(&endless).await.expect_err("endless output");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("1 MiB") && msg.contains("run_streaming") && msg.contains("fix:"),
        "{msg}"
    );
    wait_until(&host, &format!("yes {m}"), false).await;

    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let big = Command::new(["head", "-c", &(3 * CAP).to_string(), "/dev/zero"]);
    let streaming = tokio::spawn({
        let host = host.clone();
        async move { host.run_streaming(&big, tx).await }
    });
    let mut total = 0;
    while let Some(chunk) = rx.recv().await {
        total += chunk.data.len();
    }
    assert_eq!(streaming.await.expect("join").expect("streamed"), Some(0));
    assert_eq!(total, 3 * CAP, "streaming is not capped");
}
