//! SshHost against Debian's sshd on 127.0.0.1: connections per deploy-like run, command latency against a
//! fresh `ssh` process per command (the runbook's way), and upload throughput against `scp`.
//!
//! `cargo bench -p connect-core --bench ssh`; the last line is JSON.
//!
//! Both latency figures include the server's per-session cost: sshd forks and the user's shell starts,
//! reading the user's rc files (bash reads `~/.bashrc` when run by sshd). A heavy `~/.bashrc` (e.g. `pyenv
//! init`, ~230 ms) adds the same fixed cost to both and measures the dotfiles, not the SDK. So the latency
//! runs as a user whose shell reads nothing: `CONNECT_BENCH_SSH_USER=<user>` names one (the test sshd's
//! authorized_keys applies to any user); when unset and run as root, the bench creates a throwaway system
//! user with `/bin/sh` (which reads no rc file for `sh -c`) and a home in sshd's temp dir, and deletes it at
//! the end. A production server's deploy user is such an account; root's interactive dotfiles are not part
//! of what the runbook pays per command on one. Both sides still pay the same sshd fork and shell start.

use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use connect_core::host::{Command, Endpoint, Host, HostExt, PutOptions};
use connect_core::ssh::SshHost;
use connect_core::testing::Sshd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TRANSFER_BYTES: u64 = 256 * 1024 * 1024;

fn p50(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

fn ssh_args(sshd: &Sshd) -> Vec<String> {
    vec![
        "-i".into(),
        sshd.client_key().display().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", sshd.known_hosts().display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
    ]
}

fn write_source(path: &Path) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create source"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..TRANSFER_BYTES / block.len() as u64 {
        for c in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block).expect("write source");
    }
    f.flush().expect("flush");
}

/// A system user that exists for one bench run: `/bin/sh`, home under sshd's temp dir, no password (`*`,
/// not `!`: sshd without PAM refuses a `!`-locked account even for key authentication). Deleted on drop.
struct ThrowawayUser {
    name: String,
}

impl ThrowawayUser {
    fn create(scratch: &Path) -> ThrowawayUser {
        let name = format!("connect-bench-{}", std::process::id());
        // An empty skeleton: /etc/skel's rc files are what this user is here to avoid.
        let skel = scratch.join("skel");
        std::fs::create_dir_all(&skel).expect("mkdir skel");
        let out = Process::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--shell",
                "/bin/sh",
                "--password",
                "*",
            ])
            .arg("--home-dir")
            .arg(scratch.join("home"))
            .arg("--create-home")
            .arg("--skel")
            .arg(&skel)
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(out.status.success(), "useradd {name} failed: {out:?}");
        ThrowawayUser { name }
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        // --force: a session sshd is still tearing down must not leave the account behind.
        match Process::new("userdel").args(["--force", &self.name]).output() {
            Ok(out) if out.status.success() => {}
            other => eprintln!("userdel {} failed ({other:?}): remove it by hand", self.name),
        }
    }
}

fn is_root() -> bool {
    Process::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
}

async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

#[tokio::main]
async fn main() {
    let Some(sshd) = Sshd::start("bench ssh").await else {
        eprintln!("sshd missing: nothing measured");
        return;
    };
    let scratch = sshd.dir().join("bench");
    std::fs::create_dir(&scratch).expect("mkdir");
    let s = |name: &str| scratch.join(name).display().to_string();
    let echo = echo_server().await;

    // 20 mixed operations, counting the TCP connections sshd accepts meanwhile.
    let before = sshd.accepted_connections();
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    for i in 0..4 {
        host.run_checked(&Command::new(["echo", "deploy", &i.to_string()]))
            .await
            .expect("run");
        let state = s(&format!("journal-{i}.json"));
        host.write_file(
            &state,
            format!("{{\"deploy\":{i}}}").into_bytes(),
            PutOptions::default(),
        )
        .await
        .expect("put");
        host.read_file(&state).await.expect("get");
        host.disk_usage(&scratch.display().to_string()).await.expect("df");
        let mut stream = host
            .connect(&Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: echo,
            })
            .await
            .expect("tunnel");
        stream.write_all(b"health?").await.expect("write");
        let mut back = [0u8; 7];
        stream.read_exact(&mut back).await.expect("read");
    }
    let sshd_connections = sshd.accepted_connections() - before;
    println!(
        "20 mixed operations (run, put, get, df, tunnel): sshd accepted {sshd_connections} TCP connection(s)"
    );

    let throwaway = match std::env::var("CONNECT_BENCH_SSH_USER") {
        Err(_) if is_root() => Some(ThrowawayUser::create(&sshd.dir().join("bench-user"))),
        _ => None,
    };
    let latency_user = match (&throwaway, std::env::var("CONNECT_BENCH_SSH_USER")) {
        (Some(u), _) => u.name.clone(),
        (None, Ok(u)) => u,
        (None, Err(_)) => sshd.user().to_string(),
    };
    let latency_host = if latency_user == sshd.user() {
        host.clone()
    } else {
        let mut config = sshd.config();
        config.user = latency_user.clone();
        SshHost::connect(config)
            .await
            .expect("connect as the latency user")
    };
    let true_cmd = Command::new(["true"]);
    for _ in 0..5 {
        latency_host.run(&true_cmd).await.expect("warm up");
    }
    let mut shared = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        latency_host.run(&true_cmd).await.expect("run");
        shared.push(t.elapsed());
    }
    let exec_p50_ms = p50(shared);

    let mut fresh = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let out = Process::new("ssh")
            .args(ssh_args(&sshd))
            .args(["-p", &sshd.port().to_string()])
            .arg(format!("{latency_user}@127.0.0.1"))
            .arg("true")
            .output()
            .expect("ssh");
        assert!(out.status.success(), "ssh failed: {out:?}");
        fresh.push(t.elapsed());
    }
    let ssh_process_p50_ms = p50(fresh);
    let speedup = ssh_process_p50_ms / exec_p50_ms;
    // Sessions of the throwaway user end before it goes.
    drop(latency_host);
    drop(throwaway);
    println!(
        "`true` as {latency_user}: shared connection p50 {exec_p50_ms:.2} ms, fresh ssh process p50 {ssh_process_p50_ms:.2} ms ({speedup:.1}x)"
    );

    let source = scratch.join("source.bin");
    write_source(&source);
    let mut ours = Vec::new();
    let mut scp = Vec::new();
    for round in 0..2 {
        let t = Instant::now();
        let file = tokio::fs::File::open(&source).await.expect("open source");
        let n = host
            .put_file(
                &s(&format!("ours-{round}.bin")),
                Box::pin(file),
                PutOptions::default(),
            )
            .await
            .expect("upload");
        assert_eq!(n, TRANSFER_BYTES);
        ours.push(t.elapsed());
        let t = Instant::now();
        let out = Process::new("scp")
            .args(ssh_args(&sshd))
            .args(["-q", "-P", &sshd.port().to_string()])
            .arg(&source)
            .arg(format!(
                "{}@127.0.0.1:{}",
                sshd.user(),
                s(&format!("scp-{round}.bin"))
            ))
            .output()
            .expect("scp");
        assert!(out.status.success(), "scp failed: {out:?}");
        scp.push(t.elapsed());
        let _ = std::fs::remove_file(s(&format!("ours-{round}.bin")));
        let _ = std::fs::remove_file(s(&format!("scp-{round}.bin")));
    }
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default().as_secs_f64();
    let mib = TRANSFER_BYTES as f64 / (1024.0 * 1024.0);
    let (ours_s, scp_s) = (best(&ours), best(&scp));
    let transfer_ratio_vs_scp = scp_s / ours_s;
    println!(
        "upload {mib:.0} MiB: SshHost {ours_s:.2} s ({:.0} MiB/s, cksum-verified, fsynced), scp {scp_s:.2} s ({:.0} MiB/s)",
        mib / ours_s,
        mib / scp_s
    );
    let t = Instant::now();
    let mut reader = host
        .get_file(&source.display().to_string())
        .await
        .expect("download");
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert_eq!(total, TRANSFER_BYTES);
    println!(
        "download {mib:.0} MiB: SshHost {:.2} s (cksum-verified)",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(host.connections_opened(), 1);

    println!(
        "{}",
        serde_json::json!({
            "sshd_connections": sshd_connections,
            "exec_p50_ms": (exec_p50_ms * 1000.0).round() / 1000.0,
            "ssh_process_p50_ms": (ssh_process_p50_ms * 1000.0).round() / 1000.0,
            "speedup": (speedup * 10.0).round() / 10.0,
            "transfer_ratio_vs_scp": (transfer_ratio_vs_scp * 100.0).round() / 100.0,
        })
    );
}
