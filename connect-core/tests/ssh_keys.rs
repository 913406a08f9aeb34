//! Host keys and private keys against Debian's OpenSSH server: a host pinned under one key type stays pinned,
//! trust on first use only ever appends a line, and a private key others can read is refused.
#![cfg(feature = "ssh")]

use std::os::unix::fs::PermissionsExt;

use connect_core::ErrorKind;
use connect_core::host::{Command, Host};
use connect_core::ssh::SshHost;
use connect_core::testing::Sshd;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[tokio::test]
async fn a_host_pinned_to_one_key_type_that_shows_another_is_refused_even_with_tofu() {
    // The server has an ed25519 and an ECDSA key but presents only the ECDSA one, as a man in the
    // middle holding no copy of the ed25519 key would.
    let Some(sshd) = Sshd::start_with_host_keys(
        "pinned_key_type",
        &["ed25519", "ecdsa"],
        "HostKeyAlgorithms ecdsa-sha2-nistp256",
    )
    .await
    else {
        return;
    };
    let known = sshd.known_hosts();
    let before = std::fs::read_to_string(&known).expect("read");
    for tofu in [false, true] {
        let e = SshHost::connect(sshd.config().trust_on_first_use(tofu))
            .await
            .expect_err("another key type than the pinned one");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{}:1", known.display()))
                && msg.contains("ssh-ed25519")
                && msg.contains("ecdsa-sha2-nistp256")
                && msg.contains("fix:"),
            "names the pinned line, both key types and a fix: {msg}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&known).expect("read"),
        before,
        "nothing learned"
    );
}

#[tokio::test]
async fn the_key_type_known_hosts_records_is_the_one_asked_for() {
    // OpenSSH's client asks first for the key types known_hosts has for the host; a server with several
    // keys then shows the pinned one instead of looking unknown (or, now, like an impostor).
    let Some(sshd) = Sshd::start_with_host_keys("known_type_first", &["ed25519", "ecdsa"], "").await else {
        return;
    };
    let known = sshd.dir().join("known_hosts_ecdsa");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", sshd.port(), sshd.host_key_line_of("ecdsa")),
    )
    .expect("write");
    let host = SshHost::connect(sshd.config().known_hosts(&known))
        .await
        .expect("the recorded ECDSA key is the one checked");
    assert!(host.run(&Command::new(["true"])).await.expect("run").success());
}

#[tokio::test]
async fn trust_on_first_use_appends_one_whole_line_and_keeps_the_file_mode() {
    let Some(sshd) = Sshd::start("tofu_appends").await else {
        return;
    };
    let known = sshd.dir().join("known_hosts_shared");
    // Another host's line, written by hand without a final newline.
    let other = format!("other-host {}", sshd.host_key_line_of("ed25519"));
    std::fs::write(&known, &other).expect("write");
    std::fs::set_permissions(&known, std::fs::Permissions::from_mode(0o640)).expect("chmod");

    SshHost::connect(sshd.config().known_hosts(&known).trust_on_first_use(true))
        .await
        .expect("trust on first use");
    let text = std::fs::read_to_string(&known).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one line appended, none merged: {text:?}");
    assert_eq!(lines[0], other, "the existing line is untouched");
    assert!(
        lines[1].starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port())),
        "{text:?}"
    );
    assert!(text.ends_with('\n'));
    assert_eq!(mode(&known), 0o640, "the file keeps its mode");

    // Known now: a second connection neither needs trust nor appends again.
    SshHost::connect(sshd.config().known_hosts(&known))
        .await
        .expect("known after the first use");
    SshHost::connect(sshd.config().known_hosts(&known).trust_on_first_use(true))
        .await
        .expect("connect again");
    assert_eq!(std::fs::read_to_string(&known).expect("read"), text);
}

#[tokio::test]
async fn a_private_key_others_can_read_is_refused_before_connecting() {
    let Some(sshd) = Sshd::start("unprotected_key").await else {
        return;
    };
    let key = sshd.dir().join("shared_key");
    std::fs::copy(sshd.client_key(), &key).expect("copy");
    for loose in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(loose)).expect("chmod");
        let e = SshHost::connect(sshd.config().key_file(&key))
            .await
            .expect_err("an unprotected key");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("UNPROTECTED PRIVATE KEY FILE")
                && msg.contains(&format!("{loose:04o}"))
                && msg.contains(&format!("chmod 600 {}", key.display())),
            "{msg}"
        );
    }
    assert_eq!(sshd.accepted_connections(), 0, "refused before the network");
    for tight in [0o600, 0o400] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(tight)).expect("chmod");
        SshHost::connect(sshd.config().key_file(&key))
            .await
            .expect("a key only its owner can read");
    }
}
