//! Putting a set's files back: the reverse of taking it, for a recovery onto a fresh server. The set is read
//! where it is (usually the off-host copy on the machine running the command), each file hashed on the way
//! and checked against the manifest, and written atomically on the destination.

use std::collections::BTreeSet;

use super::copy::{send_checked, xargs0};
use super::{BackupManifest, checked_dir};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Host, PutOptions};

/// What [`put_back`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PutBackReport {
    /// The part (`configs`, `uploads`).
    pub part: String,
    /// Where its files went on the destination (`/` for configs: each under its own absolute path).
    pub destination: String,
    /// Files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Writes the files of part `part` of the set in `set_dir` on `src` (`<dir>/<id>`, the manifest's set)
/// onto `dest` under `dest_root`: the part's paths are relative to it, so `configs` (kept under their own
/// absolute paths) go back with `dest_root = "/"` and `uploads` into the uploads directory. Missing
/// directories are made (`mkdir -p`); each file is written with `mode` through a temporary and a rename;
/// a file whose bytes are not the manifest's is [`ErrorKind::Corrupt`] and stops the copy (the files before
/// it are in place: the report of the error says which).
pub async fn put_back(
    src: &dyn Host,
    set_dir: &str,
    manifest: &BackupManifest,
    part: &str,
    dest: &dyn Host,
    dest_root: &str,
    mode: u32,
) -> Result<PutBackReport> {
    let op = "backup_set.put_back";
    let set_dir = checked_dir(op, set_dir)?;
    let root = match dest_root.trim_end_matches('/') {
        "" => String::new(),
        _ => checked_dir(op, dest_root)?,
    };
    let prefix = format!("{part}/");
    // The manifest refuses paths that leave the set; `..` is refused here too, since the root changed.
    let files: Vec<_> = manifest
        .part_files(part)
        .filter_map(|f| f.path.strip_prefix(&prefix).map(|rel| (f, rel)))
        .collect();
    if let Some((f, _)) = files
        .iter()
        .find(|(_, rel)| rel.split('/').any(|c| c == ".." || c.is_empty()))
    {
        return Err(Error::new(
            ErrorKind::Corrupt,
            op,
            &f.path,
            "a path that would leave its destination",
        )
        .with_hint("the manifest was tampered with: use another set"));
    }
    let parents: BTreeSet<String> = files
        .iter()
        .filter_map(|(_, rel)| rel.rsplit_once('/').map(|(dir, _)| format!("{root}/{dir}")))
        .chain((!root.is_empty()).then(|| root.clone()))
        .collect();
    xargs0(dest, &["mkdir", "-p", "--"], parents.iter().map(String::as_str)).await?;
    let mut report = PutBackReport {
        part: part.to_string(),
        destination: format!("{}:{}", dest.name(), if root.is_empty() { "/" } else { &root }),
        files: 0,
        bytes: 0,
    };
    for (f, rel) in files {
        let from = format!("{set_dir}/{}", f.path);
        let to = format!("{root}/{rel}");
        let options = PutOptions {
            mode,
            create_new: false,
        };
        let bytes = send_checked(src, &from, dest, &to, f, options)
            .await
            .map_err(|e| {
                let done = format!("{} of the part's files were put back before {to}", report.files);
                match e.kind() {
                    ErrorKind::Corrupt => e.with_hint(format!(
                        "{done}; the copy of the set is damaged: use another set (--set)"
                    )),
                    _ => e.with_hint(done),
                }
            })?;
        report.files += 1;
        report.bytes += bytes;
    }
    Ok(report)
}
