//! Bad input without HAProxy: garbage, truncated and missing replies from a fake socket, unsafe names,
//! settings that would break the config.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::router::AdminState;
use connect_haproxy::config::Https;
use connect_haproxy::{Command, Haproxy, ProxyConfig, RuntimeApi, Weight};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// A unix socket that answers every connection with `reply` (after reading the command line), or never
/// answers when `reply` is `None`.
fn fake_socket(dir: &Path, reply: Option<&'static str>) -> RuntimeApi {
    let path = dir.join("fake.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                match reply {
                    Some(r) => {
                        let _ = s.write_all(r.as_bytes()).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            });
        }
    });
    RuntimeApi::unix(path).with_timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn garbage_truncated_and_missing_replies_are_clear_errors() {
    let cases: [(Option<&'static str>, ErrorKind); 5] = [
        (Some("HTTP/1.1 400 Bad Request\r\n\r\n"), ErrorKind::Corrupt),
        (Some("# pxname,svname,scur\nbe_app,app1,0\n"), ErrorKind::Corrupt),
        (Some(""), ErrorKind::Corrupt),
        (Some("Permission denied\n\n"), ErrorKind::PermissionDenied),
        (None, ErrorKind::Timeout),
    ];
    for (reply, kind) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let hx = Haproxy::new(fake_socket(dir.path(), reply), "be_app").expect("name");
        let e = hx.stat().await.expect_err("must fail");
        assert_eq!(e.kind(), kind, "{reply:?}: {e}");
    }
}

#[tokio::test]
async fn a_change_answered_with_unexpected_words_is_not_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hx = Haproxy::new(
        fake_socket(dir.path(), Some("\n[err]: Require 'backend/server'.\n\n")),
        "be_app",
    )
    .expect("name");
    let e = hx
        .set_admin("app1", AdminState::Drain)
        .await
        .expect_err("error reply");
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(e.to_string().contains("Require 'backend/server'."), "{e}");
    let dir = tempfile::tempdir().expect("tempdir");
    let hx = Haproxy::new(fake_socket(dir.path(), Some("something odd\n\n")), "be_app").expect("name");
    let e = hx
        .set_admin("app1", AdminState::Drain)
        .await
        .expect_err("untagged words");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
}

#[tokio::test]
async fn missing_socket_names_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hx = Haproxy::new(RuntimeApi::unix(dir.path().join("none.sock")), "be_app").expect("name");
    let e = hx.stat().await.expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("level admin"), "{e}");
}

#[test]
fn names_that_could_smuggle_commands_are_refused() {
    for bad in ["app1;shutdown sessions", "app 1", "", "a/b", "a\nb"] {
        let c = Command::SetState {
            backend: "be_app".into(),
            server: bad.into(),
            state: AdminState::Ready,
        };
        assert_eq!(
            c.line().expect_err(bad).kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    assert!(Haproxy::new(RuntimeApi::unix("/x"), "be;x").is_err());
    let c = Command::SetWeight {
        backend: "be_app".into(),
        server: "app1".into(),
        weight: Weight::Absolute(257),
    };
    assert_eq!(c.line().expect_err("257").kind(), ErrorKind::InvalidInput);
    let c = Command::SetWeight {
        backend: "be_app".into(),
        server: "app1".into(),
        weight: Weight::Percent(50),
    };
    assert_eq!(c.line().expect("50%"), "set server be_app/app1 weight 50%");
}

#[test]
fn haproxy_words_map_to_kinds() {
    let c = Command::DelServer {
        backend: "be_app".into(),
        server: "app3".into(),
    };
    let cases = [
        ("No such server.", ErrorKind::NotFound),
        ("No such backend.", ErrorKind::NotFound),
        ("Permission denied", ErrorKind::PermissionDenied),
        ("Unknown command, but maybe", ErrorKind::Unsupported),
        (
            "Already exists a server with the same name in backend.",
            ErrorKind::Conflict,
        ),
        (
            "Only servers in maintenance mode can be deleted.",
            ErrorKind::Conflict,
        ),
        (
            "Absolute weight can only be between 0 and 256 inclusive.",
            ErrorKind::Refused,
        ),
    ];
    for (words, kind) in cases {
        let e = c.error(words);
        assert_eq!(e.kind(), kind, "{words}");
        assert!(e.to_string().contains(words), "{e}");
    }
}

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

#[test]
fn config_renders_the_runbook_topology() {
    let mut c = ProxyConfig::runbook(
        addr(80),
        addr(3000),
        addr(3001),
        Path::new("/run/haproxy/admin.sock"),
        Path::new("/var/lib/haproxy/server-state"),
    );
    let text = c.render().expect("renders");
    for needle in [
        "stats socket /run/haproxy/admin.sock mode 600 level admin",
        "master-worker",
        "server-state-file /var/lib/haproxy/server-state",
        "load-server-state-from-file global",
        "option httpchk GET /api/health",
        "server app1 127.0.0.1:3000 check inter 2000ms weight 100",
        "server app2 127.0.0.1:3001 check inter 2000ms weight 100",
    ] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
    assert!(!text.contains("ssl"), "no HTTPS without a certificate");
    c.https = Some(Https {
        bind: addr(443),
        certificate: "/etc/haproxy/certs/connect.pem".into(),
    });
    let text = c.render().expect("renders");
    assert!(
        text.contains("http-request redirect scheme https code 301"),
        "{text}"
    );
    assert!(
        text.contains("bind 127.0.0.1:443 ssl crt /etc/haproxy/certs/connect.pem"),
        "{text}"
    );
    c.health_path = "/api/health now".into();
    assert_eq!(c.render().expect_err("space").kind(), ErrorKind::InvalidInput);
    c.health_path = "/api/health".into();
    c.admin_socket = "/run/my socket".into();
    assert_eq!(c.render().expect_err("space").kind(), ErrorKind::InvalidInput);
    c.admin_socket = "/run/admin.sock".into();
    c.servers[0].name = "app1;x".into();
    assert_eq!(c.render().expect_err("name").kind(), ErrorKind::InvalidInput);
}

#[test]
fn show_map_replies_become_map_files_or_errors() {
    use connect_haproxy::map_file_text;
    assert_eq!(
        map_file_text("0x55 live green\n0x56 since v2\n\n").expect("parses"),
        "live green\nsince v2\n"
    );
    assert_eq!(map_file_text("\n").expect("empty map"), "");
    for bad in ["", "0x55 live green\n0x56 sin", "garbage\n\n", "0x55 live\n\n"] {
        let e = map_file_text(bad).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{bad:?}");
    }
}
