//! `SshHost` against Debian's OpenSSH server, started by each test on 127.0.0.1 with its own keys.
#![cfg(feature = "ssh")]

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::conformance::host_suite;
use connect_core::host::{Command, Endpoint, Host, HostExt, PutOptions};
use connect_core::ssh::{ForwardAddr, ForwardFrom, OutputStream, SshHost};
use connect_core::testing::{Sshd, TcpProxy};
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
async fn auth_is_refused_for_a_key_not_in_authorized_keys() {
    let Some(sshd) = Sshd::start("auth_refused").await else {
        return;
    };
    let stranger = sshd.new_client_key("stranger", "ed25519", "", false);
    let e = SshHost::connect(sshd.config().key_file(&stranger))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("authorized_keys"), "names the fix: {e}");
    assert_eq!(sshd.accepted_connections(), 1);
}

#[tokio::test]
async fn an_unknown_host_is_refused_unless_trusted_on_first_use() {
    let Some(sshd) = Sshd::start("unknown_host").await else {
        return;
    };
    let known = sshd.dir().join("empty_known_hosts");
    let e = SshHost::connect(sshd.config().known_hosts(&known))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(
        e.to_string().contains("not in") && e.to_string().contains("SHA256:"),
        "{e}"
    );

    let host = SshHost::connect(sshd.config().known_hosts(&known).trust_on_first_use(true))
        .await
        .expect("trust on first use");
    drop(host);
    let recorded = std::fs::read_to_string(&known).expect("recorded");
    assert!(
        recorded.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port())),
        "{recorded}"
    );
    SshHost::connect(sshd.config().known_hosts(&known))
        .await
        .expect("known after the first use");
}

#[tokio::test]
async fn a_changed_host_key_is_refused_naming_file_and_line() {
    let Some(sshd) = Sshd::start("changed_host_key").await else {
        return;
    };
    let other = sshd.new_client_key("impostor_host", "ed25519", "", false);
    let other_pub = std::fs::read_to_string(format!("{}.pub", other.display())).expect("pub");
    let known = sshd.dir().join("changed_known_hosts");
    std::fs::write(
        &known,
        format!("# hosts\n[127.0.0.1]:{} {}", sshd.port(), other_pub),
    )
    .expect("write");
    for tofu in [false, true] {
        let e = SshHost::connect(sshd.config().known_hosts(&known).trust_on_first_use(tofu))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        let msg = e.to_string();
        assert!(
            msg.contains("CHANGED") && msg.contains(&format!("{}:2", known.display())),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn rsa_ecdsa_and_encrypted_keys_authenticate() {
    let Some(sshd) = Sshd::start("key_types").await else {
        return;
    };
    let rsa = sshd.new_client_key("id_rsa", "rsa", "", true);
    let ecdsa = sshd.new_client_key("id_ecdsa", "ecdsa", "", true);
    let locked = sshd.new_client_key("id_locked", "ed25519", "s3cret pass", true);
    for key in [&rsa, &ecdsa] {
        let host = SshHost::connect(sshd.config().key_file(key))
            .await
            .expect("connect");
        assert!(host.run(&Command::new(["true"])).await.expect("run").success());
    }
    let e = SshHost::connect(sshd.config().key_file(&locked))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("passphrase"), "{e}");
    let e = SshHost::connect(sshd.config().key_file(&locked).passphrase("wrong"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    SshHost::connect(sshd.config().key_file(&locked).passphrase("s3cret pass"))
        .await
        .expect("the right passphrase");
}

#[tokio::test]
async fn the_ssh_agent_authenticates() {
    let Some(sshd) = Sshd::start("ssh_agent").await else {
        return;
    };
    let Some(agent_bin) = connect_core::testing::require_program("ssh_agent", "ssh-agent", &[]) else {
        return;
    };
    let socket = sshd.dir().join("agent.sock");
    let mut agent = std::process::Command::new(agent_bin)
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let sock = socket.clone();
    connect_core::wait::poll_until(
        "agent",
        "sock",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            let exists = sock.exists();
            async move {
                Ok(if exists {
                    Ok(())
                } else {
                    Err("no socket yet".into())
                })
            }
        },
    )
    .await
    .expect("agent socket");
    let added = std::process::Command::new("ssh-add")
        .arg(sshd.client_key())
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .expect("ssh-add");
    assert!(added.status.success(), "{added:?}");
    let mut config = sshd.config().agent(&socket);
    config.key_file = None;
    let result = SshHost::connect(config).await;
    let _ = agent.kill();
    let _ = agent.wait();
    let host = result.expect("agent auth");
    assert!(host.run(&Command::new(["true"])).await.expect("run").success());
}

#[tokio::test]
async fn fifty_concurrent_operations_share_one_connection() {
    let Some((sshd, host)) = server("fifty_concurrent").await else {
        return;
    };
    let port = echo_tcp().await;
    let file = sshd.dir().join("shared.txt");
    let file = file.to_str().expect("utf-8").to_string();
    host.write_file(&file, b"shared".to_vec(), PutOptions::default())
        .await
        .expect("write");
    let ops = (0..50).map(|i| {
        let (host, file) = (host.clone(), file.clone());
        async move {
            match i % 4 {
                0 => {
                    let out = host.run(&Command::new(["echo", &format!("op {i}")])).await?;
                    assert_eq!(out.stdout_text(), format!("op {i}\n"));
                }
                1 => assert_eq!(host.read_file(&file).await?.as_deref(), Some(&b"shared"[..])),
                2 => assert!(host.disk_usage("/").await?.total_bytes > 0),
                _ => {
                    let s = host
                        .connect(&Endpoint::Tcp {
                            host: "127.0.0.1".into(),
                            port,
                        })
                        .await?;
                    ping(s, format!("stream {i}").as_bytes()).await;
                }
            }
            Ok::<(), connect_core::Error>(())
        }
    });
    for r in futures::future::join_all(ops).await {
        r.expect("operation");
    }
    assert_eq!(host.connections_opened(), 1);
    assert_eq!(sshd.accepted_connections(), 1, "sshd saw one TCP connection");
}

#[tokio::test]
async fn tunnels_reach_a_unix_socket_and_a_tcp_port() {
    let Some((sshd, host)) = server("tunnels").await else {
        return;
    };
    let sock = sshd.dir().join("app.sock");
    echo_unix(&sock);
    let port = echo_tcp().await;
    let unix = Endpoint::Unix(sock.to_str().expect("utf-8").into());
    let tcp = Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    ping(
        host.connect(&unix).await.expect("streamlocal"),
        b"over direct-streamlocal",
    )
    .await;
    ping(host.connect(&tcp).await.expect("tcpip"), b"over direct-tcpip").await;

    let fwd = host
        .forward(ForwardFrom::Loopback, unix.clone())
        .await
        .expect("forward tcp");
    let addr = fwd.tcp_addr().expect("tcp");
    assert!(addr.ip().is_loopback());
    ping(
        tokio::net::TcpStream::connect(addr).await.expect("connect"),
        b"via local port",
    )
    .await;
    let local_sock = sshd.dir().join("local.sock");
    let fwd2 = host
        .forward(ForwardFrom::Unix(local_sock.clone()), tcp)
        .await
        .expect("forward unix");
    assert_eq!(fwd2.local_addr(), &ForwardAddr::Unix(local_sock.clone()));
    ping(
        tokio::net::UnixStream::connect(&local_sock)
            .await
            .expect("connect"),
        b"via local socket",
    )
    .await;
    drop(fwd2);
    assert!(!local_sock.exists(), "the socket is removed with the forwarder");
    drop(fwd);

    let e = host
        .connect(&Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: connect_core::testing::free_port(),
        })
        .await
        .err()
        .expect("nothing listens");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert_eq!(host.connections_opened(), 1);
}

#[tokio::test]
async fn a_connection_killed_mid_operation_fails_clearly_and_recovers() {
    let Some(sshd) = Sshd::start("killed_mid_operation").await else {
        return;
    };
    let proxy = TcpProxy::start(sshd.port()).await.expect("proxy");
    let known = sshd.known_hosts_via(proxy.port());
    let host = SshHost::connect(sshd.config().port(proxy.port()).known_hosts(&known))
        .await
        .expect("connect via proxy");
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let long = Command::new(["sh", "-c", "echo started; exec sleep 30"]);
    let run = tokio::spawn({
        let host = host.clone();
        async move { host.run_streaming(&long, tx).await }
    });
    let first = rx.recv().await.expect("the program started");
    assert_eq!(first.data, b"started\n");
    proxy.cut();
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("no hang: the failure is reported promptly")
        .expect("join");
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.to_string().contains("not repeated"),
        "says it was not retried: {e}"
    );
    // An idempotent operation reopens the connection.
    assert!(host.disk_usage("/").await.expect("after reconnect").total_bytes > 0);
    assert_eq!(host.connections_opened(), 2);
    assert_eq!(proxy.accepted(), 2);
}

/// A reader of `left` pseudo-random bytes generated on the fly (byte i depends only on i): the data never
/// sits in memory.
struct Generated {
    left: u64,
    pos: u64,
}

fn byte_at(pos: u64) -> u8 {
    let x = (pos / 8)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    x.rotate_left(17).to_le_bytes()[(pos % 8) as usize]
}

impl tokio::io::AsyncRead for Generated {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left).min(64 * 1024);
        let start = self.pos;
        let chunk: Vec<u8> = (start..start + n).map(byte_at).collect();
        self.left -= n;
        self.pos += n;
        buf.put_slice(&chunk);
        std::task::Poll::Ready(Ok(()))
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_transfer_of_100_mb_streams_in_constant_memory() {
    let Some((sshd, host)) = server("transfer_100_mb").await else {
        return;
    };
    const SIZE: u64 = 100 * 1024 * 1024;
    let path = sshd.dir().join("big.bin");
    let path = path.to_str().expect("utf-8");
    let before = rss_kib();
    let written = host
        .put_file(
            path,
            Box::pin(Generated { left: SIZE, pos: 0 }),
            PutOptions {
                mode: 0o640,
                create_new: false,
            },
        )
        .await
        .expect("upload");
    assert_eq!(written, SIZE);
    let meta = std::fs::metadata(path).expect("stat");
    assert_eq!(meta.len(), SIZE);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o640,
        "mode kept"
    );

    let mut expected = Generated { left: SIZE, pos: 0 };
    let mut reader = host.get_file(path).await.expect("download");
    let (mut got, mut want) = (vec![0u8; 256 * 1024], vec![0u8; 256 * 1024]);
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut got).await.expect("read");
        if n == 0 {
            break;
        }
        expected.read_exact(&mut want[..n]).await.expect("expected bytes");
        assert!(got[..n] == want[..n], "byte mismatch near offset {total}");
        total += n as u64;
    }
    assert_eq!(total, SIZE);
    let growth_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        growth_mib < 64,
        "memory grew by {growth_mib} MiB moving 2 x 100 MiB: not constant"
    );
    let names: Vec<_> = std::fs::read_dir(sshd.dir())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().contains(".tmp-")),
        "no temp file left: {names:?}"
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

#[tokio::test]
async fn a_download_dropped_midway_frees_its_session() {
    let Some((sshd, host)) = server("download_dropped").await else {
        return;
    };
    let path = sshd.dir().join("twenty.bin");
    std::fs::write(&path, vec![7u8; 20 * 1024 * 1024]).expect("write");
    let path = path.to_str().expect("utf-8").to_string();
    // More abandoned downloads than sshd's MaxSessions (10): each must give its session back.
    for _ in 0..12 {
        let mut reader = host.get_file(&path).await.expect("download");
        let mut buf = [0u8; 4096];
        reader.read_exact(&mut buf).await.expect("first bytes");
        assert_eq!(buf, [7u8; 4096]);
    }
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        host.run(&Command::new(["echo", "still serving"])),
    )
    .await
    .expect("no session leak")
    .expect("run");
    assert_eq!(out.stdout_text(), "still serving\n");
    assert_eq!(host.connections_opened(), 1);
}
