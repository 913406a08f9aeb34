//! Every program run over SSH reports how it ended, whatever order sshd sends the exit status and the
//! output in. sshd's loop reaps finished children before it reads their pipes, so when sshd runs late (a
//! loaded server) a program that wrote everything and exited meanwhile has its `exit-status` sent BEFORE
//! its output. A download used to read the status only after the file's first byte, so it lost it and
//! failed ("the sending side failed (exit status None)") although the file was whole.
#![cfg(feature = "ssh")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use connect_core::host::{Command, Host};
use connect_core::ssh::SshHost;
use connect_core::testing::{Signal, Sshd, send_signal};
use connect_core::wait::poll_until;
use tokio::io::AsyncReadExt;

/// The next command's login shell (bash reads `~/.bashrc` for every command sshd runs) records its pid and
/// sshd's, then waits on a FIFO: the test stops sshd, lets the command run to its end, and only then lets
/// sshd go on, so sshd finds the program exited with all its output still unread.
const BASHRC: &str = r#"if [ -e "$HOME/armed" ]; then
  rm -f "$HOME/armed"
  echo "$$ $PPID" > "$HOME/pids.tmp" && mv "$HOME/pids.tmp" "$HOME/pids"
  read _ < "$HOME/go"
fi
"#;

struct Frozen {
    home: tempfile::TempDir,
}

impl Frozen {
    async fn start(test: &str) -> Option<(Frozen, Sshd)> {
        let home = tempfile::tempdir().expect("home");
        std::fs::write(home.path().join(".bashrc"), BASHRC).expect("bashrc");
        let sshd = Sshd::start_with(test, &format!("SetEnv HOME={}", home.path().display())).await?;
        Some((Frozen { home }, sshd))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Makes the next command wait in its login shell.
    fn arm(&self) {
        let _ = std::fs::remove_file(self.path("pids"));
        let _ = std::fs::remove_file(self.path("go"));
        let made = std::process::Command::new("mkfifo")
            .arg(self.path("go"))
            .status()
            .expect("mkfifo");
        assert!(made.success());
        std::fs::write(self.path("armed"), "").expect("arm");
    }

    /// Once the armed command waits: stops sshd, lets the command finish, waits until it has exited (a
    /// zombie sshd cannot reap while stopped), and resumes sshd.
    async fn finish_while_sshd_is_stopped(&self) {
        let pids = self.path("pids");
        let (program, sshd) = poll_until(
            "test.pids",
            "bashrc",
            Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                let text = std::fs::read_to_string(&pids).unwrap_or_default();
                async move {
                    let mut words = text.split_whitespace().map(str::parse::<u32>);
                    Ok(match (words.next(), words.next()) {
                        (Some(Ok(program)), Some(Ok(sshd))) => Ok((program, sshd)),
                        _ => Err("the command has not reached its login shell".to_string()),
                    })
                }
            },
        )
        .await
        .expect("the armed command starts");
        signal(sshd, Signal::SIGSTOP);
        let go = self.path("go");
        tokio::task::spawn_blocking(move || std::fs::write(go, "go\n"))
            .await
            .expect("join")
            .expect("release the command");
        let state = format!("/proc/{program}/stat");
        let exited = poll_until(
            "test.zombie",
            &state,
            Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                let stat = std::fs::read_to_string(&state).unwrap_or_default();
                async move {
                    // The state is the field after the parenthesised command name.
                    let zombie = stat
                        .rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
                    Ok(if zombie {
                        Ok(())
                    } else {
                        Err(format!("not exited yet: {stat}"))
                    })
                }
            },
        )
        .await;
        signal(sshd, Signal::SIGCONT);
        exited.expect("the command runs to its end while sshd is stopped");
    }
}

fn signal(pid: u32, sig: Signal) {
    send_signal(pid, sig).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

async fn download(host: &SshHost, path: &Path) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    host.get_file(&path.display().to_string())
        .await
        .map_err(|e| e.to_string())?
        .read_to_end(&mut data)
        .await
        .map_err(|e| e.to_string())?;
    Ok(data)
}

#[tokio::test]
async fn a_download_whose_exit_status_comes_before_its_data_is_whole() {
    let Some((frozen, sshd)) = Frozen::start("exit_status_first").await else {
        return;
    };
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    let file = sshd.dir().join("deploy.lock");
    std::fs::write(&file, b"holder root@vm pid 42\n").expect("write");

    frozen.arm();
    let fetch = tokio::spawn({
        let host = host.clone();
        let file = file.clone();
        async move { download(&host, &file).await }
    });
    frozen.finish_while_sshd_is_stopped().await;
    let got = fetch.await.expect("join");
    assert_eq!(got.as_deref(), Ok(&b"holder root@vm pid 42\n"[..]));

    // A program whose status comes first reports it too.
    frozen.arm();
    let run = tokio::spawn({
        let host = host.clone();
        async move {
            host.run(&Command::new(["sh", "-c", "echo out; echo err >&2; exit 7"]))
                .await
        }
    });
    frozen.finish_while_sshd_is_stopped().await;
    let out = run.await.expect("join").expect("run");
    assert_eq!((out.status, out.stdout_text().as_str()), (Some(7), "out\n"));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_short_programs_on_one_connection_all_report_their_exit_status() {
    let Some(sshd) = Sshd::start("exit_status_load").await else {
        return;
    };
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    let file = sshd.dir().join("lock");
    std::fs::write(&file, b"holder 42\n").expect("write");
    let mut tasks = Vec::new();
    for i in 0..300u32 {
        let host = host.clone();
        let file = file.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let code = (i % 7) as i32;
                let out = host
                    .run(&Command::new(["sh", "-c", &format!("echo {i}; exit {code}")]))
                    .await
                    .map_err(|e| format!("run {i}: {e}"))?;
                if out.status != Some(code) || out.stdout_text() != format!("{i}\n") {
                    return Err(format!(
                        "run {i}: status {:?}, stdout {:?}",
                        out.status,
                        out.stdout_text()
                    ));
                }
            } else {
                let data = download(&host, &file)
                    .await
                    .map_err(|e| format!("get {i}: {e}"))?;
                if data != b"holder 42\n" {
                    return Err(format!("get {i}: {data:?}"));
                }
            }
            Ok::<(), String>(())
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.expect("task") {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 300 failed: {failures:#?}",
        failures.len()
    );
    assert_eq!(host.connections_opened(), 1);
}
