//! ProxyJump: the server reached through a bastion (two real OpenSSH sshd started by the test), driven by
//! an ssh config file as a user would write it. The client is given only the bastion's address to connect
//! to: the bastion sits behind a cuttable proxy, and cutting it breaks the connection to the server, whose
//! own sshd was never touched, which proves the server's connection ran through the bastion.
#![cfg(feature = "ssh")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::host::{Command, Host, HostExt, PutOptions};
use connect_core::ssh::{JumpHost, SshConfig, SshHost};
use connect_core::testing::{Sshd, TcpProxy};

struct Setup {
    target: Sshd,
    bastion: Sshd,
    proxy: TcpProxy,
}

/// Two sshd; the bastion also accepts the server's client key (the hop defaults to the server's key).
async fn setup(test: &str) -> Option<Setup> {
    let target = Sshd::start(&format!("{test}_target")).await?;
    let bastion = Sshd::start(&format!("{test}_bastion")).await?;
    let public = std::fs::read_to_string(target.dir().join("client_ed25519.pub")).expect("client key");
    let keys = bastion.dir().join("authorized_keys");
    let mut authorized = std::fs::read_to_string(&keys).expect("authorized_keys");
    authorized.push_str(&public);
    std::fs::write(&keys, authorized).expect("authorize the key on the bastion");
    let proxy = TcpProxy::start(bastion.port()).await.expect("proxy");
    Some(Setup {
        target,
        bastion,
        proxy,
    })
}

impl Setup {
    /// A known_hosts listing the server and, unless `without_bastion`, the bastion as the client sees it.
    fn known_hosts(&self, without_bastion: bool) -> PathBuf {
        let path = self
            .target
            .dir()
            .join(format!("known_hosts_jump_{without_bastion}"));
        let mut text = format!(
            "[127.0.0.1]:{} {}\n",
            self.target.port(),
            self.target.host_key_line()
        );
        if !without_bastion {
            text.push_str(&format!(
                "[127.0.0.1]:{} {}\n",
                self.proxy.port(),
                self.bastion.host_key_line()
            ));
        }
        std::fs::write(&path, text).expect("known_hosts");
        path
    }

    /// An ssh config with `prod` (the server) reached through `bastion` (the proxy's port).
    fn ssh_config(&self, known_hosts: &Path) -> PathBuf {
        let path = self.target.dir().join("ssh_config");
        let text = format!(
            "Host prod\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  ProxyJump bastion\n\n\
             Host bastion\n  HostName 127.0.0.1\n  Port {}\n\n\
             Host *\n  UserKnownHostsFile {}\n",
            self.target.port(),
            self.target.user(),
            self.target.client_key().display(),
            self.proxy.port(),
            known_hosts.display()
        );
        std::fs::write(&path, text).expect("ssh config");
        path
    }

    fn client(&self, ssh_config: &Path) -> SshConfig {
        SshConfig::from_ssh_config("prod")
            .ssh_config_file(ssh_config)
            .no_agent()
            .connect_timeout(Duration::from_secs(5))
            .auth_timeout(Duration::from_secs(5))
    }
}

#[tokio::test]
async fn run_upload_and_download_go_through_the_bastion() {
    let Some(s) = setup("jump").await else {
        return;
    };
    let known = s.known_hosts(false);
    let host = SshHost::connect(s.client(&s.ssh_config(&known)))
        .await
        .expect("connect through the bastion");
    assert_eq!(
        host.name(),
        format!("{}@127.0.0.1:{}", s.target.user(), s.target.port())
    );

    let out = host
        .run(&Command::new(["sh", "-c", "echo $SSH_CONNECTION"]))
        .await
        .expect("run");
    assert_eq!(out.status, Some(0));
    // The server's sshd saw the connection arrive on its own port, from the bastion's forwarding.
    let seen: Vec<String> = out.stdout_text().split_whitespace().map(str::to_string).collect();
    assert_eq!(
        seen.get(3).map(String::as_str),
        Some(s.target.port().to_string().as_str()),
        "{seen:?}"
    );

    let path = s.target.dir().join("through-the-jump.txt").display().to_string();
    let data = b"deployed through a bastion\n".repeat(1000);
    host.write_file(&path, data.clone(), PutOptions::default())
        .await
        .expect("upload");
    assert_eq!(host.read_file(&path).await.expect("download"), Some(data));

    assert_eq!(s.proxy.accepted(), 1, "one TCP connection, to the bastion");
    assert_eq!(
        s.target.accepted_connections(),
        1,
        "one SSH connection to the server"
    );
    assert_eq!(host.connections_opened(), 1);

    // Cut the path to the bastion: the connection to the server, whose sshd still runs, dies with it.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let long = Command::new(["sh", "-c", "echo started; exec sleep 30"]);
    let run = tokio::spawn({
        let host = host.clone();
        async move { host.run_streaming(&long, tx).await }
    });
    assert_eq!(rx.recv().await.expect("the program started").data, b"started\n");
    s.proxy.cut();
    let e = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("the failure is reported promptly")
        .expect("join")
        .expect_err("the bastion's connection carried the server's");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // The next idempotent operation reconnects, through the bastion again.
    assert!(host.disk_usage("/").await.expect("reconnected").total_bytes > 0);
    assert_eq!((s.proxy.accepted(), s.target.accepted_connections()), (2, 2));
}

#[tokio::test]
async fn an_unknown_bastion_key_is_refused_naming_the_hop() {
    let Some(s) = setup("jump_refused").await else {
        return;
    };
    let known = s.known_hosts(true);
    let e = SshHost::connect(s.client(&s.ssh_config(&known)))
        .await
        .expect_err("the bastion's key is not known");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let text = e.to_string();
    assert!(text.contains("jump host 1 of 1"), "names the hop: {text}");
    assert!(
        text.contains(&format!("[127.0.0.1]:{}", s.proxy.port())),
        "names the bastion: {text}"
    );
    assert!(
        e.hint().is_some_and(|h| h.contains("ssh-keyscan")),
        "says the fix: {e:?}"
    );
    assert_eq!(s.target.accepted_connections(), 0, "nothing reached the server");
}

#[tokio::test]
async fn explicit_jump_hosts_win_over_the_ssh_config() {
    let Some(s) = setup("jump_explicit").await else {
        return;
    };
    let known = s.known_hosts(false);
    // No ssh config: everything in SshConfig, the bastion given as `ssh -J` takes it.
    let hop = JumpHost::parse(&format!("{}@127.0.0.1:{}", s.bastion.user(), s.proxy.port())).expect("hop");
    let config = s.target.config().known_hosts(&known).no_ssh_config().jump(hop);
    let host = SshHost::connect(config)
        .await
        .expect("connect through the bastion");
    let out = host.run(&Command::new(["true"])).await.expect("run");
    assert_eq!(out.status, Some(0));
    assert_eq!((s.proxy.accepted(), s.target.accepted_connections()), (1, 1));
}
