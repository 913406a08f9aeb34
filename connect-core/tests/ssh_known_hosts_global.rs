//! The system-wide known_hosts is consulted read-only when the user's does not list the server.
#![cfg(feature = "ssh")]

use connect_core::ErrorKind;
use connect_core::host::{Command, Host};
use connect_core::ssh::SshHost;
use connect_core::testing::Sshd;

#[tokio::test]
async fn a_host_listed_only_globally_is_trusted_and_the_global_file_is_never_written() {
    let Some(sshd) = Sshd::start("global_known_hosts").await else {
        return;
    };
    let user_file = sshd.dir().join("user_known_hosts");
    std::fs::write(&user_file, "").expect("empty user known_hosts");
    let global = sshd.known_hosts();
    let before = std::fs::read(&global).expect("global");

    let host = SshHost::connect(
        sshd.config()
            .known_hosts(&user_file)
            .global_known_hosts(Some(global.clone()))
            .trust_on_first_use(true),
    )
    .await
    .expect("the global file knows the host");
    assert_eq!(
        host.run(&Command::new(["true"])).await.expect("run").status,
        Some(0)
    );
    assert_eq!(std::fs::read(&global).expect("global"), before, "read-only");
    assert_eq!(
        std::fs::read_to_string(&user_file).expect("user"),
        "",
        "known: nothing learnt"
    );

    // Without it the same host is unknown, and the message names both files.
    let e = SshHost::connect(sshd.config().known_hosts(&user_file).global_known_hosts(None))
        .await
        .expect_err("unknown host");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let missing = sshd.dir().join("no_global");
    let e2 = SshHost::connect(
        sshd.config()
            .known_hosts(&user_file)
            .global_known_hosts(Some(missing.clone())),
    )
    .await
    .expect_err("unknown host");
    assert!(e2.to_string().contains(&missing.display().to_string()), "{e2}");
}
