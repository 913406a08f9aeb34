//! `LocalHost` against the shared host conformance suite, with echo servers on TCP and a unix socket.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use connect_core::conformance::host_suite;
use connect_core::host::{Command, Endpoint, Host, HostExt, PutOptions};
use connect_core::wait::poll_until;
use connect_core::{ErrorKind, LocalHost};
use tokio::net::{TcpListener, UnixListener};

fn serve_echo_tcp(listener: TcpListener) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

fn serve_echo_unix(listener: UnixListener) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

#[tokio::test]
async fn local_host_passes_the_host_suite_with_a_tcp_echo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    serve_echo_tcp(listener);
    let scratch = dir.path().to_str().expect("utf-8 temp dir");
    host_suite(
        &LocalHost::new(),
        scratch,
        Some(Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        }),
    )
    .await;
}

#[tokio::test]
async fn local_host_passes_the_host_suite_with_a_unix_echo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("echo.sock");
    serve_echo_unix(UnixListener::bind(&sock).expect("bind unix"));
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).expect("mkdir");
    host_suite(
        &LocalHost::new(),
        scratch.to_str().expect("utf-8"),
        Some(Endpoint::Unix(sock.to_str().expect("utf-8").into())),
    )
    .await;
}

#[tokio::test]
async fn put_file_keeps_the_mode_and_leaves_no_temp_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("secret.env");
    let path = path.to_str().expect("utf-8");
    let host = LocalHost::new();
    host.write_file(
        path,
        b"A=1".to_vec(),
        PutOptions {
            mode: 0o600,
            create_new: true,
        },
    )
    .await
    .expect("write");
    let mode = std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret.env")]);
}

#[tokio::test]
async fn exclusive_creation_has_one_winner_among_many() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lock = dir.path().join("deploy.lock");
    let lock = lock.to_str().expect("utf-8").to_string();
    let host = LocalHost::new();
    let attempts = (0..16).map(|i| {
        let (host, lock) = (host.clone(), lock.clone());
        async move {
            host.write_file(
                &lock,
                format!("holder {i}").into_bytes(),
                PutOptions {
                    create_new: true,
                    ..PutOptions::default()
                },
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
}

#[tokio::test]
async fn a_missing_program_is_not_found_with_a_fix() {
    let e = LocalHost::new()
        .run(&Command::new(["no-such-program-xyz"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), connect_core::ErrorKind::NotFound);
    assert!(e.to_string().contains("install"), "{e}");
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_refused_quickly() {
    let port = connect_core::testing::free_port();
    let e = LocalHost::new()
        .connect(&Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        })
        .await
        .err()
        .expect("nothing listens");
    assert_eq!(e.kind(), connect_core::ErrorKind::Refused, "{e}");
}

/// A `sleep` no other process runs: its duration is the marker `pgrep` looks for.
fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "4243.{}{:03}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits until a process whose command line starts with `prefix` runs (or no longer does).
async fn wait_until_running(prefix: &str, present: bool) {
    let pattern = format!("^{}", prefix.replace('.', "\\."));
    poll_until(
        "test.pgrep",
        prefix,
        Duration::from_secs(10),
        Duration::from_millis(10),
        || {
            let found = std::process::Command::new("pgrep")
                .args(["-f", &pattern])
                .status()
                .expect("pgrep")
                .success();
            async move {
                Ok(if found == present {
                    Ok(())
                } else {
                    Err(format!("running: {found}"))
                })
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A shell that forks `sleep` and waits: killing only the shell would leave the sleep behind.
fn sleeper(m: &str) -> Command {
    Command::new(["sh", "-c", &format!("sleep {m}; echo woke")])
}

#[tokio::test]
async fn a_dropped_run_kills_the_program_and_what_it_forked() {
    let m = marker();
    let call = tokio::spawn({
        let cmd = sleeper(&m);
        async move { LocalHost::new().run(&cmd).await }
    });
    wait_until_running(&format!("sleep {m}"), true).await;
    call.abort();
    let _ = call.await;
    wait_until_running(&format!("sleep {m}"), false).await;
}

#[tokio::test]
async fn a_program_past_its_deadline_is_killed_with_what_it_forked() {
    let m = marker();
    let e = LocalHost::new()
        .run(&sleeper(&m).timeout(Duration::from_millis(200)))
        .await
        .expect_err("past its deadline");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        e.to_string().contains("killed") && e.to_string().contains("fix:"),
        "{e}"
    );
    wait_until_running(&format!("sleep {m}"), false).await;

    let m = marker();
    let host = LocalHost::new().with_command_timeout(Duration::from_millis(200));
    let e = host.run(&sleeper(&m)).await.expect_err("past the host's default");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    wait_until_running(&format!("sleep {m}"), false).await;
    let out = host
        .run(&Command::new(["sh", "-c", "sleep 0.3; echo done"]).timeout(Duration::from_secs(30)))
        .await
        .expect("within its own deadline");
    assert_eq!(out.stdout_text(), "done\n");
}

#[tokio::test]
async fn output_past_the_cap_is_refused_not_buffered() {
    const CAP: usize = 1024 * 1024;
    let host = LocalHost::new().with_max_output(CAP);
    let out = host
        .run(&Command::new(["head", "-c", &CAP.to_string(), "/dev/zero"]))
        .await
        .expect("exactly the cap");
    assert_eq!(out.stdout.len(), CAP);
    let m = marker();
    let e = host
        .run(&Command::new(["sh", "-c", &format!("exec yes {m} >&2")]))
        .await
        .expect_err("endless output");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(e.to_string().contains("1 MiB"), "{e}");
    wait_until_running(&format!("yes {m}"), false).await;
}

#[tokio::test]
async fn a_program_whose_name_holds_an_equals_sign_runs_as_a_program() {
    let dir = tempfile::tempdir().expect("temp dir");
    let program = dir.path().join("CONNECT_EQ=1");
    std::fs::write(&program, "#!/bin/sh\necho \"ran with $*\"\n").expect("write");
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let out = LocalHost::new()
        .run(&Command::new([program.to_str().expect("utf-8"), "an argument"]))
        .await
        .expect("run");
    assert_eq!(out.stdout_text(), "ran with an argument\n");
}

#[tokio::test]
async fn a_symlink_planted_where_a_temporary_goes_is_neither_followed_nor_a_false_conflict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").expect("write");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    // Temporaries used to be named `.<file>.tmp-<pid>-<n>`: plant a symlink at every such name.
    for n in 0..200 {
        let planted = shared.join(format!(".journal.json.tmp-{}-{n}", std::process::id()));
        std::os::unix::fs::symlink(&victim, planted).expect("plant");
    }
    let target = shared.join("journal.json");
    let target = target.to_str().expect("utf-8");
    let host = LocalHost::new();
    host.write_file(target, b"the journal".to_vec(), PutOptions::default())
        .await
        .expect("write");
    std::fs::remove_file(target).expect("rm");
    host.write_file(
        target,
        b"the lock".to_vec(),
        PutOptions {
            mode: 0o600,
            create_new: true,
        },
    )
    .await
    .expect("an exclusive write is no conflict with a planted link");
    assert_eq!(std::fs::read(target).expect("read"), b"the lock");
    assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
}
