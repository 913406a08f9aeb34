//! Putting a set's files back: the reverse of taking it, for a recovery onto a fresh server. The set is read
//! where it is (usually the off-host copy on the machine running the command), each file hashed on the way
//! and checked against the manifest, and written atomically on the destination with the mode the manifest
//! records, then given back to its owner when the destination logs in as root.

use std::collections::{BTreeMap, BTreeSet};

use super::copy::{send_checked, xargs0};
use super::{BackupManifest, FileOwner, ManifestFile, checked_dir};
use crate::error::{Error, ErrorKind, Result};
use crate::host::{Command, Host, HostExt, PutOptions};

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
    /// Files given back to their recorded owner (`chown`, as root only).
    pub owners_applied: u64,
    /// What was assumed where the manifest or the login fell short: files without a recorded mode (a
    /// set from before modes were kept) written with the fallback mode, owners not applied because the
    /// login is not root, a user unknown on the destination replaced by its number.
    pub notes: Vec<String>,
}

/// Writes the files of part `part` of the set in `set_dir` on `src` (`<dir>/<id>`, the manifest's set)
/// onto `dest` under `dest_root`: the part's paths are relative to it, so `configs` (kept under their own
/// absolute paths) go back with `dest_root = "/"` and `uploads` into the uploads directory. Missing
/// directories are made (`mkdir -p`); each file is written through a temporary and a rename with the mode
/// the manifest records, or `fallback_mode` when it records none (a set from before modes were kept: the
/// report's `notes` say so). When the destination's login is root, each file is then given its recorded
/// owner, by name (a fresh server may number its system users differently), else by number; otherwise
/// files keep the login as owner and the notes say so. A file whose bytes are not the manifest's is
/// [`ErrorKind::Corrupt`] and stops the copy (the files before it are in place: the report of the error
/// says which).
pub async fn put_back(
    src: &dyn Host,
    set_dir: &str,
    manifest: &BackupManifest,
    part: &str,
    dest: &dyn Host,
    dest_root: &str,
    fallback_mode: u32,
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
        owners_applied: 0,
        notes: Vec::new(),
    };
    let unmoded = files.iter().filter(|(f, _)| f.mode.is_none()).count();
    if unmoded > 0 {
        report.notes.push(format!(
            "{unmoded} of the part's files have no recorded mode (a set from before modes were kept): written {fallback_mode:04o}"
        ));
    }
    let mut placed = Vec::with_capacity(files.len());
    for (f, rel) in files {
        let from = format!("{set_dir}/{}", f.path);
        let to = format!("{root}/{rel}");
        let options = PutOptions {
            mode: f.mode.unwrap_or(fallback_mode),
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
        placed.push((f, to));
    }
    apply_owners(dest, &placed, &mut report).await?;
    Ok(report)
}

/// Gives each placed file its recorded owner when the destination's login is root (only root may), one
/// `chown` per owner whatever the number of files; the name first, the number when the destination does
/// not know the name.
async fn apply_owners(
    dest: &dyn Host,
    placed: &[(&ManifestFile, String)],
    report: &mut PutBackReport,
) -> Result<()> {
    let mut by_owner: BTreeMap<(u32, u32), (&FileOwner, Vec<&str>)> = BTreeMap::new();
    for (f, to) in placed {
        if let Some(owner) = &f.owner {
            let entry = by_owner
                .entry((owner.uid, owner.gid))
                .or_insert_with(|| (owner, Vec::new()));
            entry.1.push(to.as_str());
        }
    }
    if by_owner.is_empty() {
        return Ok(());
    }
    let id = dest.run_checked(&Command::new(["id", "-u"])).await?;
    let login: Option<u32> = id.stdout_text().trim().parse().ok();
    if login != Some(0) {
        let other = by_owner
            .iter()
            .filter(|((uid, _), _)| Some(*uid) != login)
            .map(|(_, (_, files))| files.len())
            .sum::<usize>();
        if other > 0 {
            report.notes.push(format!(
                "{other} files have another recorded owner, which only root may give: they are owned by the login (uid {}); chown them as root, or recover as root",
                login.map_or("?".to_string(), |u| u.to_string())
            ));
        }
        return Ok(());
    }
    for ((uid, gid), (owner, files)) in by_owner {
        let numeric = format!("{uid}:{gid}");
        let named = format!(
            "{}:{}",
            owner.user.clone().unwrap_or_else(|| uid.to_string()),
            owner.group.clone().unwrap_or_else(|| gid.to_string())
        );
        // `-h`: a symlink planted at the path is not followed (the file was just written there, though).
        let by_name = xargs0(dest, &["chown", "-h", "--", &named], files.iter().copied()).await;
        if let Err(e) = by_name {
            if named == numeric {
                return Err(e);
            }
            xargs0(dest, &["chown", "-h", "--", &numeric], files.iter().copied()).await?;
            report.notes.push(format!(
                "owner {named} is unknown on {}: {} files owned by {numeric} instead",
                dest.name(),
                files.len()
            ));
        }
        report.owners_applied += files.len() as u64;
    }
    Ok(())
}
