//! Files of any size streamed in constant memory, and a download dropped midway.

use std::time::Duration;

use connect_core::host::{Command, Host, PutOptions};
use tokio::io::AsyncReadExt;

use super::server;

/// A reader of `left` pseudo-random bytes generated on the fly (byte i depends only on i): the data never
/// sits in memory.
struct Generated {
    left: u64,
    pos: u64,
}

fn byte_at(pos: u64) -> u8 {
    let x = (pos / 8)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    x.rotate_left(17).to_le_bytes()[(pos % 8) as usize]
}

impl tokio::io::AsyncRead for Generated {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left).min(64 * 1024);
        let start = self.pos;
        let chunk: Vec<u8> = (start..start + n).map(byte_at).collect();
        self.left -= n;
        self.pos += n;
        buf.put_slice(&chunk);
        std::task::Poll::Ready(Ok(()))
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_transfer_of_100_mb_streams_in_constant_memory() {
    let Some((sshd, host)) = server("transfer_100_mb").await else {
        return;
    };
    const SIZE: u64 = 100 * 1024 * 1024;
    let path = sshd.dir().join("big.bin");
    let path = path.to_str().expect("utf-8");
    let before = rss_kib();
    let written = host
        .put_file(
            path,
            Box::pin(Generated { left: SIZE, pos: 0 }),
            PutOptions {
                mode: 0o640,
                create_new: false,
            },
        )
        .await
        .expect("upload");
    assert_eq!(written, SIZE);
    let meta = std::fs::metadata(path).expect("stat");
    assert_eq!(meta.len(), SIZE);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o640,
        "mode kept"
    );

    let mut expected = Generated { left: SIZE, pos: 0 };
    let mut reader = host.get_file(path).await.expect("download");
    let (mut got, mut want) = (vec![0u8; 256 * 1024], vec![0u8; 256 * 1024]);
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut got).await.expect("read");
        if n == 0 {
            break;
        }
        expected.read_exact(&mut want[..n]).await.expect("expected bytes");
        assert!(got[..n] == want[..n], "byte mismatch near offset {total}");
        total += n as u64;
    }
    assert_eq!(total, SIZE);
    let growth_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        growth_mib < 64,
        "memory grew by {growth_mib} MiB moving 2 x 100 MiB: not constant"
    );
    let names: Vec<_> = std::fs::read_dir(sshd.dir())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().contains(".tmp-")),
        "no temp file left: {names:?}"
    );
}

#[tokio::test]
async fn a_download_dropped_midway_frees_its_session() {
    let Some((sshd, host)) = server("download_dropped").await else {
        return;
    };
    let path = sshd.dir().join("twenty.bin");
    std::fs::write(&path, vec![7u8; 20 * 1024 * 1024]).expect("write");
    let path = path.to_str().expect("utf-8").to_string();
    // More abandoned downloads than sshd's MaxSessions (10): each must give its session back.
    for _ in 0..12 {
        let mut reader = host.get_file(&path).await.expect("download");
        let mut buf = [0u8; 4096];
        reader.read_exact(&mut buf).await.expect("first bytes");
        assert_eq!(buf, [7u8; 4096]);
    }
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        host.run(&Command::new(["echo", "still serving"])),
    )
    .await
    .expect("no session leak")
    .expect("run");
    assert_eq!(out.stdout_text(), "still serving\n");
    assert_eq!(host.connections_opened(), 1);
}
