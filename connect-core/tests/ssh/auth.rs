//! Who may log in: keys in and out of `authorized_keys`, unknown and changed host keys, every key type
//! and the SSH agent.

use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::host::{Command, Host};
use connect_core::ssh::SshHost;
use connect_core::testing::Sshd;

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
