//! A set copied off the server: to the machine running the command (`LocalHost`) or any other [`Host`].
//! Files whose path and SHA-256 are the same in the destination's previous copy are hard-linked there, the
//! others streamed and hashed on the way; the manifest goes in last, then the copy is renamed into place.

use std::collections::{BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use super::manifest::MANIFEST;
use super::{
    BackupManifest, checked_dir, list_sets, private_dir, prune_sets, read_manifest, run, run_checked,
};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host, HostExt, PutOptions};

/// What [`copy_set`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CopyReport {
    /// The destination host's name and directory.
    pub destination: String,
    /// The set copied.
    pub id: String,
    /// Files streamed (new or changed since the destination's previous copy).
    pub files_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Files hard-linked from the previous copy (same path, same SHA-256).
    pub files_linked: u64,
    /// Whether the destination had this set already (nothing was sent).
    pub already_there: bool,
    /// Older copies removed to keep the newest `keep`.
    pub pruned: Vec<String>,
}

/// Copies set `manifest.id` from `src_dir` on `src` to `dest_dir` on `dest`, then keeps the newest `keep`
/// copies there. A file whose bytes do not hash to the manifest's SHA-256 fails the copy
/// ([`ErrorKind::Corrupt`]) and leaves no copy behind.
pub async fn copy_set(
    src: &dyn Host,
    src_dir: &str,
    manifest: &BackupManifest,
    dest: &dyn Host,
    dest_dir: &str,
    keep: usize,
) -> Result<CopyReport> {
    let src_dir = checked_dir("backup_set.copy", src_dir)?;
    let dest_dir = checked_dir("backup_set.copy", dest_dir)?;
    let id = &manifest.id;
    let mut report = CopyReport {
        destination: format!("{}:{dest_dir}", dest.name()),
        id: id.clone(),
        files_sent: 0,
        bytes_sent: 0,
        files_linked: 0,
        already_there: false,
        pruned: Vec::new(),
    };
    private_dir(dest, &dest_dir).await?;
    let copies = list_sets(dest, &dest_dir).await?;
    if copies.contains(id) {
        report.already_there = true;
        report.pruned = prune_sets(dest, &dest_dir, keep).await?;
        return Ok(report);
    }
    // The newest copy before this set: what unchanged files are linked from.
    let previous = match copies.iter().rev().find(|c| c.as_str() < id.as_str()) {
        Some(p) => Some((p.clone(), read_manifest(dest, &dest_dir, p).await?)),
        None => None,
    };
    let before: HashMap<&str, &str> = previous
        .as_ref()
        .map(|(_, m)| {
            m.files
                .iter()
                .map(|f| (f.path.as_str(), f.sha256.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let partial = format!("{dest_dir}/{id}.partial");
    // A copy of this set that was interrupted is started over.
    run_checked(dest, ["rm", "-rf", "--", &partial]).await?;
    run_checked(dest, ["mkdir", "-m", "700", "--", &partial]).await?;
    let result = async {
        let parents: BTreeSet<String> = manifest
            .files
            .iter()
            .filter_map(|f| f.path.rsplit_once('/').map(|(dir, _)| format!("{partial}/{dir}")))
            .collect();
        xargs0(dest, &["mkdir", "-p", "--"], parents.iter().map(String::as_str)).await?;
        let mut links = Vec::new();
        for f in &manifest.files {
            if let Some((prev_id, _)) = &previous
                && before.get(f.path.as_str()) == Some(&f.sha256.as_str())
            {
                links.push(format!("{dest_dir}/{prev_id}/{}", f.path));
                links.push(format!("{partial}/{}", f.path));
                report.files_linked += 1;
                continue;
            }
            let from = format!("{src_dir}/{id}/{}", f.path);
            let to = format!("{partial}/{}", f.path);
            let private = PutOptions {
                mode: 0o600,
                create_new: true,
            };
            let bytes = send_checked(src, &from, dest, &to, f, private)
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::Corrupt => e.with_hint(
                        "the set changed or was damaged on the server since it was taken: take a new set",
                    ),
                    _ => e,
                })?;
            report.files_sent += 1;
            report.bytes_sent += bytes;
        }
        // `ln SRC DST` pairs: one program for any number of unchanged files.
        xargs0(dest, &["-n", "2", "ln", "--"], links.iter().map(String::as_str)).await?;
        let json = serde_json::to_vec_pretty(manifest)
            .map_err(|e| Error::new(ErrorKind::Failed, "backup_set.copy", id, e.to_string()))?;
        dest.write_file(
            &format!("{partial}/{MANIFEST}"),
            json,
            PutOptions {
                mode: 0o600,
                create_new: true,
            },
        )
        .await?;
        run_checked(dest, ["mv", "-T", "--", &partial, &format!("{dest_dir}/{id}")]).await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = run(dest, ["rm", "-rf", "--", &partial]).await;
        return Err(e);
    }
    report.pruned = prune_sets(dest, &dest_dir, keep).await?;
    Ok(report)
}

/// Streams `from` on `src` into `to` on `dest`, hashing on the way: bytes that are not `file`'s (size or
/// SHA-256) are [`ErrorKind::Corrupt`]. The destination is written atomically (`put_file`), so a reader sees
/// the old file or the new one.
pub(super) async fn send_checked(
    src: &dyn Host,
    from: &str,
    dest: &dyn Host,
    to: &str,
    file: &super::ManifestFile,
    options: PutOptions,
) -> Result<u64> {
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let reader = HashingReader {
        inner: src.get_file(from).await?,
        hasher: hasher.clone(),
    };
    let bytes = dest.put_file(to, Box::pin(reader), options).await?;
    let digest = hasher
        .lock()
        .map(|h| h.clone().finalize())
        .map_err(|_| Error::new(ErrorKind::Failed, "backup_set.copy", from, "the hash was lost"))?;
    let sha256 = data_encoding::HEXLOWER.encode(&digest);
    if sha256 != file.sha256 || bytes != file.bytes {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "backup_set.copy",
            from,
            format!(
                "{bytes} bytes with SHA-256 {sha256}; the manifest says {} bytes, {}",
                file.bytes, file.sha256
            ),
        ));
    }
    Ok(bytes)
}

/// `xargs -0 ARGS…` with `items` on its standard input (nothing run when there are none).
pub(super) async fn xargs0<'a>(
    host: &dyn Host,
    args: &[&str],
    items: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut input = Vec::new();
    for item in items {
        input.extend_from_slice(item.as_bytes());
        input.push(0);
    }
    if input.is_empty() {
        return Ok(());
    }
    let argv = ["xargs", "-0"].iter().chain(args).copied();
    host.run_checked(&Command::new(argv).stdin(input).timeout(super::PROGRAM_DEADLINE))
        .await
        .map(drop)
}

/// Hashes what passes through.
struct HashingReader {
    inner: crate::host::BoxReader,
    hasher: Arc<Mutex<Sha256>>,
}

impl AsyncRead for HashingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = self.inner.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll
            && let Ok(mut h) = self.hasher.lock()
        {
            h.update(&buf.filled()[before..]);
        }
        poll
    }
}
