//! The one connection: concurrent operations sharing it, tunnels over it (direct-tcpip, streamlocal,
//! forwards), and a connection killed mid-operation.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::host::{Command, Endpoint, Host, HostExt, PutOptions};
use connect_core::ssh::{ForwardAddr, ForwardFrom, SshHost};
use connect_core::testing::{Sshd, TcpProxy};

use super::{echo_tcp, echo_unix, ping, server};

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
