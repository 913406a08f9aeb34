//! Bad input to `SshHost`: each error names the cause and the fix, and none waits past its timeout.
#![cfg(feature = "ssh")]

use std::time::{Duration, Instant};

use connect_core::ErrorKind;
use connect_core::ssh::{SshConfig, SshHost};
use connect_core::testing::{Sshd, free_port};

fn base(dir: &std::path::Path) -> SshConfig {
    let key = dir.join("id_ed25519");
    if !key.exists() {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output();
        if !out.is_ok_and(|o| o.status.success()) {
            std::fs::write(&key, "placeholder").expect("write key");
        }
    }
    SshConfig::new("127.0.0.1", "nobody")
        .no_ssh_config()
        .global_known_hosts(None)
        .key_file(key)
        .known_hosts(dir.join("known_hosts"))
        .no_agent()
        .connect_timeout(Duration::from_secs(1))
        .auth_timeout(Duration::from_secs(1))
}

#[tokio::test]
async fn a_wrong_port_is_refused_at_once_naming_the_port() {
    let dir = tempfile::tempdir().expect("temp");
    let port = free_port();
    let started = Instant::now();
    let e = SshHost::connect(base(dir.path()).port(port)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("fix:"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_on_time() {
    let dir = tempfile::tempdir().expect("temp");
    // Accepts TCP but never speaks SSH, like a host behind a black hole.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let started = Instant::now();
    let e = SshHost::connect(base(dir.path()).port(port)).await.unwrap_err();
    let took = started.elapsed();
    hold.abort();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        took < Duration::from_secs(3),
        "waited {took:?} past a 1 s timeout"
    );
    assert!(e.to_string().contains("fix:"), "{e}");
}

#[tokio::test]
async fn a_missing_or_unreadable_key_fails_before_connecting() {
    let dir = tempfile::tempdir().expect("temp");
    let port = free_port();
    for key in [dir.path().join("absent"), dir.path().to_path_buf()] {
        let e = SshHost::connect(base(dir.path()).port(port).key_file(&key))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(
            e.to_string().contains(&key.display().to_string()),
            "names the file: {e}"
        );
        assert!(e.to_string().contains("fix:"), "{e}");
    }
    let public = dir.path().join("id_ed25519.pub");
    if public.exists() {
        let e = SshHost::connect(base(dir.path()).port(port).key_file(&public))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not the .pub file"), "{e}");
    }
    let mut no_key = base(dir.path()).port(port);
    no_key.key_file = None;
    let e = SshHost::connect(no_key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("SSH_AUTH_SOCK"), "{e}");
}

#[tokio::test]
async fn a_malformed_known_hosts_names_file_and_line() {
    let Some(sshd) = Sshd::start("malformed_known_hosts").await else {
        return;
    };
    let known = sshd.dir().join("bad_known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} ssh-ed25519 AAAA!!notbase64\n", sshd.port()),
    )
    .expect("write");
    let e = SshHost::connect(sshd.config().known_hosts(&known))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("{}:1", known.display())) && msg.contains("fix:"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_wrong_user_is_refused_with_the_fix() {
    let Some(sshd) = Sshd::start("wrong_user").await else {
        return;
    };
    let mut config = sshd.config();
    config.user = "no-such-user-xyz".into();
    let started = Instant::now();
    let e = SshHost::connect(config).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("authorized_keys"), "{e}");
}
