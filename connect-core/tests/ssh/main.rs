//! `SshHost` against Debian's OpenSSH server, started by each test on 127.0.0.1 with its own keys.
#![cfg(feature = "ssh")]

mod auth;
mod connection;
mod transfers;

use connect_core::ErrorKind;
use connect_core::conformance::host_suite;
use connect_core::host::{Command, Endpoint, Host, HostExt};
use connect_core::ssh::{OutputStream, SshHost};
use connect_core::testing::Sshd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

async fn server(test: &str) -> Option<(Sshd, SshHost)> {
    let sshd = Sshd::start(test).await?;
    let host = SshHost::connect(sshd.config()).await.expect("connect to sshd");
    Some((sshd, host))
}

async fn echo_tcp() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

fn echo_unix(path: &std::path::Path) {
    let listener = UnixListener::bind(path).expect("bind unix");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

async fn ping(mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin, msg: &[u8]) {
    stream.write_all(msg).await.expect("write");
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back).await.expect("read back");
    assert_eq!(back, msg);
}

#[tokio::test]
async fn ssh_host_passes_the_host_suite() {
    let Some((sshd, host)) = server("ssh_host_passes_the_host_suite").await else {
        return;
    };
    let scratch = sshd.dir().join("scratch");
    std::fs::create_dir(&scratch).expect("mkdir");
    let port = echo_tcp().await;
    host_suite(
        &host,
        scratch.to_str().expect("utf-8"),
        Some(Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port,
        }),
    )
    .await;
    assert_eq!(host.connections_opened(), 1);
}

#[tokio::test]
async fn a_failing_command_keeps_status_stdout_and_stderr_apart() {
    let Some((_sshd, host)) = server("a_failing_command").await else {
        return;
    };
    let cmd = Command::new(["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let out = host.run(&cmd).await.expect("run");
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    let e = host.run_checked(&cmd).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Failed);
    assert!(
        e.to_string().contains("exited 3") && e.to_string().contains("err"),
        "{e}"
    );
    let out = host
        .run(&Command::new(["sh", "-c", "kill -9 $$"]))
        .await
        .expect("run");
    assert_eq!(out.status, None, "killed by a signal");
}

#[tokio::test]
async fn long_commands_stream_their_output() {
    let Some((_sshd, host)) = server("long_commands_stream_their_output").await else {
        return;
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    // The program waits for a line on stdin that only arrives after we saw its first output.
    let cmd = Command::new(["sh", "-c", "echo first; echo warn >&2; sleep 0.2; echo second"]);
    let run = tokio::spawn({
        let host = host.clone();
        async move { host.run_streaming(&cmd, tx).await }
    });
    let mut seen = Vec::new();
    while let Some(chunk) = rx.recv().await {
        seen.push((chunk.stream, String::from_utf8_lossy(&chunk.data).into_owned()));
    }
    assert_eq!(run.await.expect("join").expect("run"), Some(0));
    let stdout: String = seen
        .iter()
        .filter(|c| c.0 == OutputStream::Stdout)
        .map(|c| c.1.clone())
        .collect();
    assert_eq!(stdout, "first\nsecond\n");
    assert!(
        seen.iter()
            .any(|c| c.0 == OutputStream::Stderr && c.1 == "warn\n")
    );
    assert!(
        seen.len() >= 2,
        "output came in pieces as it was produced: {seen:?}"
    );
}

#[tokio::test]
async fn arguments_arrive_exactly_through_the_remote_shell() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let Some((_sshd, host)) = server("argument_quoting").await else {
        return;
    };
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(
        prop_oneof![
            "[^\\x00]{0,32}",
            Just("$(touch /tmp/connect-pwned)".to_string()),
            Just("'; echo \"x\" `id` $HOME \\".to_string()),
            Just("* ? [a-z] ~ {a,b} ! # & | > <\n\t".to_string()),
            Just("ünïcødé ☃ 🚀".to_string()),
        ],
        1..5,
    );
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::spawn_blocking(move || {
        runner.run(&strategy, |args| {
            let mut argv = vec!["printf".to_string(), "%s\\0".to_string()];
            argv.extend(args.iter().cloned());
            let out = handle
                .block_on(host.run(&Command::new(argv)))
                .expect("run printf");
            let text = String::from_utf8(out.stdout).expect("utf-8");
            let mut got: Vec<String> = text.split('\0').map(str::to_string).collect();
            got.pop();
            prop_assert_eq!(got, args);
            Ok(())
        })
    })
    .await
    .expect("join");
    result.expect("every argument arrived unchanged");
    assert!(!std::path::Path::new("/tmp/connect-pwned").exists());
}
