//! Programs and files over SSH under hostile or unusual conditions, against Debian's OpenSSH server: a
//! program name with `=`, symlinks planted where temporaries go, failed and abandoned exclusive uploads,
//! and a server with nothing but the utilities the README lists.
#![cfg(feature = "ssh")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use connect_core::ErrorKind;
use connect_core::conformance::host_suite;
use connect_core::host::{Command, Host, HostExt, PutOptions};
use connect_core::ssh::SshHost;
use connect_core::testing::{Sshd, TcpProxy};
use connect_core::wait::poll_until;

const EXCLUSIVE: PutOptions = PutOptions {
    mode: 0o600,
    create_new: true,
};

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn scratch(sshd: &Sshd, name: &str) -> (std::path::PathBuf, String) {
    let dir = sshd.dir().join(name);
    std::fs::create_dir(&dir).expect("mkdir");
    let text = dir.to_str().expect("utf-8").to_string();
    (dir, text)
}

#[tokio::test]
async fn a_program_whose_name_holds_an_equals_sign_runs_as_a_program() {
    // `CONNECT_EQ=1` is a program on the server's PATH; a shell would take the word as an assignment.
    let bin = tempfile::tempdir().expect("temp");
    script(&bin.path().join("CONNECT_EQ=1"), r#"echo "ran with $*""#);
    let path = format!("SetEnv PATH={}:/usr/bin:/bin", bin.path().display());
    let Some(sshd) = Sshd::start_with("equals_program", &path).await else {
        return;
    };
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    let out = host
        .run(&Command::new(["CONNECT_EQ=1", "an argument"]))
        .await
        .expect("run");
    assert_eq!(out.stdout_text(), "ran with an argument\n", "{out:?}");
    // Nor is any other first word the shell's: a reserved word is a program name like any other.
    let out = host.run(&Command::new(["if"])).await.expect("run");
    assert_eq!(out.status, Some(127), "no program `if`: {out:?}");
}

#[tokio::test]
async fn a_symlink_planted_where_a_temporary_goes_is_not_followed() {
    let Some(sshd) = Sshd::start("planted_symlink").await else {
        return;
    };
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    let (dir, dir_text) = scratch(&sshd, "shared");
    let victim = sshd.dir().join("victim");
    std::fs::write(&victim, "precious").expect("write");
    // Temporaries used to be named `.<file>.tmp-<pid>-<n>-<pid>` after the client's pid: plant a symlink
    // at every such name this process could use.
    let pid = std::process::id();
    for n in 0..200 {
        let planted = dir.join(format!(".journal.json.tmp-{pid}-{n}-{pid}"));
        std::os::unix::fs::symlink(&victim, planted).expect("plant");
    }
    let before = names(&dir);
    let target = format!("{dir_text}/journal.json");
    for options in [PutOptions::default(), EXCLUSIVE] {
        let _ = host.remove_file(&target).await;
        host.write_file(&target, b"the journal".to_vec(), options)
            .await
            .expect("write");
        assert_eq!(
            std::fs::read(&target).expect("read"),
            b"the journal",
            "{options:?}"
        );
    }
    assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
    let mut after = names(&dir);
    after.retain(|n| n != "journal.json");
    assert_eq!(
        after, before,
        "only the file was added; the planted links are untouched"
    );
}

/// A check for `poll_until`: whether an upload's temporary of `deploy.lock` is in `dir` (as `want`).
fn temp_present(
    dir: &Path,
    want: bool,
) -> impl FnMut() -> std::future::Ready<connect_core::Result<Result<(), String>>> {
    let dir = dir.to_path_buf();
    move || {
        let found = names(&dir).iter().any(|n| n.starts_with(".deploy.lock.tmp-"));
        std::future::ready(Ok(if found == want {
            Ok(())
        } else {
            Err(format!("temporary present: {found}"))
        }))
    }
}

/// A reader that yields `first` and then fails, or (with `fail: false`) never yields again.
struct Stalling {
    first: Option<Vec<u8>>,
    fail: bool,
}

impl tokio::io::AsyncRead for Stalling {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Some(first) = self.first.take() {
            buf.put_slice(&first);
            return std::task::Poll::Ready(Ok(()));
        }
        if self.fail {
            return std::task::Poll::Ready(Err(std::io::Error::other("the source broke")));
        }
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn a_failed_or_abandoned_exclusive_upload_leaves_no_temporary() {
    let Some(sshd) = Sshd::start("exclusive_leftovers").await else {
        return;
    };
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    let (dir, dir_text) = scratch(&sshd, "state");
    let lock = format!("{dir_text}/deploy.lock");

    host.write_file(&lock, b"holder A".to_vec(), EXCLUSIVE)
        .await
        .expect("first holder");
    let e = host
        .write_file(&lock, b"holder B".to_vec(), EXCLUSIVE)
        .await
        .expect_err("taken");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(names(&dir), ["deploy.lock"]);
    host.remove_file(&lock).await.expect("unlock");

    // The data source fails midway: an error, and the partial temporary is gone when it returns.
    let broken = Stalling {
        first: Some(vec![b'x'; 100_000]),
        fail: true,
    };
    let e = host
        .put_file(&lock, Box::pin(broken), EXCLUSIVE)
        .await
        .expect_err("the source broke");
    assert!(e.to_string().contains("the source broke"), "{e}");
    assert_eq!(names(&dir), Vec::<String>::new());

    // The caller gives up mid-upload (a timeout around it): the server removes its temporary.
    let stalled = Stalling {
        first: Some(vec![b'x'; 100_000]),
        fail: false,
    };
    let upload = tokio::spawn({
        let (host, lock) = (host.clone(), lock.clone());
        async move { host.put_file(&lock, Box::pin(stalled), EXCLUSIVE).await }
    });
    let (limit, every) = (Duration::from_secs(10), Duration::from_millis(20));
    poll_until("test", "upload started", limit, every, temp_present(&dir, true))
        .await
        .expect("the upload started");
    upload.abort();
    let _ = upload.await;
    poll_until(
        "test",
        "temporary removed",
        limit,
        every,
        temp_present(&dir, false),
    )
    .await
    .expect("no temporary left");
    assert_eq!(names(&dir), Vec::<String>::new(), "and no lock");
}

#[tokio::test]
async fn an_upload_cut_off_by_the_network_leaves_no_temporary() {
    let Some(sshd) = Sshd::start("upload_cut_off").await else {
        return;
    };
    let proxy = TcpProxy::start(sshd.port()).await.expect("proxy");
    let known = sshd.known_hosts_via(proxy.port());
    let host = SshHost::connect(sshd.config().port(proxy.port()).known_hosts(&known))
        .await
        .expect("connect via proxy");
    let (dir, dir_text) = scratch(&sshd, "state");
    let lock = format!("{dir_text}/deploy.lock");
    let stalled = Stalling {
        first: Some(vec![b'x'; 100_000]),
        fail: false,
    };
    let upload = tokio::spawn({
        let (host, lock) = (host.clone(), lock.clone());
        async move { host.put_file(&lock, Box::pin(stalled), EXCLUSIVE).await }
    });
    let (limit, every) = (Duration::from_secs(10), Duration::from_millis(20));
    poll_until("test", "upload started", limit, every, temp_present(&dir, true))
        .await
        .expect("the upload started");
    proxy.cut();
    let e = tokio::time::timeout(limit, upload)
        .await
        .expect("the cut is noticed")
        .expect("join")
        .expect_err("cut off");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // The receiver sees its input end, cannot report to a client that is gone (SIGPIPE), and its trap
    // removes the temporary.
    poll_until(
        "test",
        "temporary removed",
        limit,
        every,
        temp_present(&dir, false),
    )
    .await
    .expect("no temporary left");
    assert_eq!(names(&dir), Vec::<String>::new(), "and no lock");
}

#[tokio::test]
async fn the_server_needs_only_the_utilities_the_readme_lists() {
    // POSIX sh and utilities, plus mktemp, sync and stat (see README, "The server"); echo, false and cat
    // are the conformance suite's own test programs.
    const LISTED: &[&str] = &[
        "sh", "dirname", "mkdir", "tee", "cksum", "wc", "chmod", "ln", "mv", "rm", "mkfifo", "printf",
        "test", "[", "kill", "mktemp", "sync", "stat",
    ];
    const SUITE: &[&str] = &["echo", "false", "cat"];
    let bin = tempfile::tempdir().expect("temp");
    for name in LISTED.iter().chain(SUITE) {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{name} is not installed"));
        std::os::unix::fs::symlink(real, bin.path().join(name)).expect("link");
    }
    let path = format!("SetEnv PATH={}", bin.path().display());
    let Some(sshd) = Sshd::start_with("listed_utilities", &path).await else {
        return;
    };
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    let (_, dir) = scratch(&sshd, "scratch");
    host_suite(&host, &dir, None).await;
    let m = format!("{}", 4242.5 + f64::from(std::process::id() % 1000) / 1000.0);
    let e = host
        .run(&Command::new(["/bin/sleep", &m]).timeout(Duration::from_millis(200)))
        .await
        .expect_err("stopped with the listed utilities too");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let pattern = format!("[s]leep {}", m.replace('.', "\\."));
    poll_until(
        "test",
        "sleep stopped",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let (host, pattern) = (host.clone(), pattern.clone());
            async move {
                let out = host
                    .run(&Command::new(["/usr/bin/pgrep", "-f", &pattern]))
                    .await?;
                Ok(if out.status == Some(1) {
                    Ok(())
                } else {
                    Err(format!("pgrep: {out:?}"))
                })
            }
        },
    )
    .await
    .expect("the program was stopped");
}
