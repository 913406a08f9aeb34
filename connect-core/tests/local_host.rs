//! `LocalHost` against the shared host conformance suite, with echo servers on TCP and a unix socket.

use connect_core::LocalHost;
use connect_core::conformance::host_suite;
use connect_core::host::{Endpoint, Host, HostExt, PutOptions};
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
        .run(&connect_core::host::Command::new(["no-such-program-xyz"]))
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
