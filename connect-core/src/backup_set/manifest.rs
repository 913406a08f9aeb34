//! A backup set's manifest: what it holds (each file's size and SHA-256), from where and when. Written last,
//! so a set with a manifest is complete and one without is not a set.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The manifest's file name inside a set.
pub const MANIFEST: &str = "manifest.json";

/// The manifest's format; a newer one is refused rather than misread.
pub const MANIFEST_VERSION: u32 = 1;

/// One backup set, as `manifest.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// The format ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// The set's name: `YYYYMMDDTHHMMSSZ`, UTC, which sorts in time order.
    pub id: String,
    /// When it was taken, seconds since 1970 (UTC).
    pub taken_at_unix: u64,
    /// The same, RFC 3339.
    pub taken_at: String,
    /// How long taking it took, copies aside.
    pub took_ms: u64,
    /// The host it was taken on.
    pub source: String,
    /// Each part (`redis`, `uploads`, `journal`, `configs`): files and bytes.
    pub parts: Vec<PartSummary>,
    /// Paths asked for that did not exist (a journal before the first deploy, a config not written yet).
    pub missing: Vec<String>,
    /// Every file of the set, its path relative to the set's directory (`uploads/a.png`).
    pub files: Vec<ManifestFile>,
}

/// One part's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    /// `redis`, `uploads`, `journal`, `configs`.
    pub name: String,
    /// Its files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// One file of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative to the set's directory; its first component is the part.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

impl BackupManifest {
    /// Reads a manifest, refusing a newer format and one whose file paths would leave the set.
    pub fn parse(target: &str, bytes: &[u8]) -> Result<BackupManifest> {
        let m: BackupManifest = serde_json::from_slice(bytes).map_err(|e| {
            Error::new(ErrorKind::Corrupt, "backup_set.manifest", target, e.to_string())
                .with_hint("the set is damaged: use another one, and take a new set")
        })?;
        if m.version > MANIFEST_VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "backup_set.manifest",
                target,
                format!(
                    "manifest version {} (this build reads up to {MANIFEST_VERSION})",
                    m.version
                ),
            )
            .with_hint("use the connect-ops that wrote it"));
        }
        if let Some(f) = m.files.iter().find(|f| !is_relative_inside(&f.path)) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "backup_set.manifest",
                target,
                format!("file path {:?} leaves the set", f.path),
            )
            .with_hint("the manifest was tampered with: use another set"));
        }
        Ok(m)
    }

    /// When it was taken.
    pub fn taken_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.taken_at_unix)
    }

    /// How old it is at `now` (zero for a set from the future: a clock that went back).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.taken_at()).unwrap_or_default()
    }

    /// Its bytes, all parts.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// The files of one part.
    pub fn part_files<'a>(&'a self, part: &'a str) -> impl Iterator<Item = &'a ManifestFile> + 'a {
        self.files
            .iter()
            .filter(move |f| f.path.split('/').next() == Some(part))
    }
}

/// A set's name for a moment: `YYYYMMDDTHHMMSSZ`.
pub fn set_id(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
        .replace(['-', ':'], "")
}

/// Whether a name is a set's (so listing and pruning never touch anything else in the directory).
pub fn is_set_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 16 && b[8] == b'T' && b[15] == b'Z' && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// A relative path with no `..`, no empty component and no leading `/`.
pub(crate) fn is_relative_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && !path.contains('\0')
}

/// `sha256sum -z` output (`HASH  PATH\0`…) with `prefix/` taken off each path: (path, hash).
pub(crate) fn parse_sha256sum(out: &[u8], prefix: &str) -> Result<Vec<(String, String)>> {
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let mut files = Vec::new();
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let text = std::str::from_utf8(record).map_err(|_| bad_listing(&prefix, "a path is not UTF-8"))?;
        let (hash, path) = text.split_once("  ").ok_or_else(|| bad_listing(&prefix, text))?;
        let rel = path
            .strip_prefix(&prefix)
            .ok_or_else(|| bad_listing(&prefix, path))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad_listing(&prefix, text));
        }
        files.push((rel.to_string(), hash.to_string()));
    }
    Ok(files)
}

/// `find -printf '%s %P\0'` output: (path, size).
pub(crate) fn parse_sizes(out: &[u8]) -> Result<Vec<(String, u64)>> {
    let mut files = Vec::new();
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let text = std::str::from_utf8(record).map_err(|_| bad_listing("find", "a path is not UTF-8"))?;
        let (size, path) = text.split_once(' ').ok_or_else(|| bad_listing("find", text))?;
        let size = size.parse().map_err(|_| bad_listing("find", text))?;
        files.push((path.to_string(), size));
    }
    Ok(files)
}

fn bad_listing(target: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        "backup_set.listing",
        target,
        format!("unexpected line: {what:?}"),
    )
    .with_hint("file names must be UTF-8; rename the file, or report the line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_time_order_and_are_recognised() {
        let a = set_id(UNIX_EPOCH + Duration::from_secs(1_780_000_000));
        let b = set_id(UNIX_EPOCH + Duration::from_secs(1_780_000_061));
        assert_eq!(a, "20260528T202640Z");
        assert!(a < b);
        assert!(is_set_id(&a) && is_set_id(&b));
        for other in [
            "20260528T202640Z.partial",
            "notes",
            "2026052xT202640Z",
            "../20260528T202640",
        ] {
            assert!(!is_set_id(other), "{other}");
        }
    }

    #[test]
    fn listings_parse_and_paths_stay_inside() {
        let hash = "a".repeat(64);
        let out = format!("{hash}  /b/s.partial/uploads/x y.png\0{hash}  /b/s.partial/redis/d.rdb\0");
        let files = parse_sha256sum(out.as_bytes(), "/b/s.partial").unwrap();
        assert_eq!(files[0], ("uploads/x y.png".to_string(), hash.clone()));
        assert_eq!(files[1].0, "redis/d.rdb");
        assert!(parse_sha256sum(format!("{hash}  /elsewhere/x\0").as_bytes(), "/b/s").is_err());
        assert!(parse_sha256sum(b"short  /b/s/x\0", "/b/s").is_err());
        assert_eq!(
            parse_sizes(b"12 uploads/a b\x000 journal/j\0").unwrap(),
            vec![("uploads/a b".to_string(), 12), ("journal/j".to_string(), 0)]
        );
        assert!(parse_sizes(b"x uploads/a\0").is_err());
        for bad in ["", "/etc/passwd", "uploads/../../x", "uploads//x", "./x"] {
            assert!(!is_relative_inside(bad), "{bad}");
        }
        assert!(is_relative_inside("configs/etc/haproxy/haproxy.cfg"));
    }

    #[test]
    fn a_manifest_leaving_the_set_or_from_a_newer_build_is_refused() {
        let mut m = BackupManifest {
            version: 1,
            id: "20260528T202640Z".into(),
            taken_at_unix: 1_780_000_000,
            taken_at: "2026-05-28T20:26:40Z".into(),
            took_ms: 1,
            source: "local".into(),
            parts: vec![],
            missing: vec![],
            files: vec![ManifestFile {
                path: "uploads/a".into(),
                bytes: 1,
                sha256: "0".repeat(64),
            }],
        };
        let ok = serde_json::to_vec(&m).unwrap();
        assert_eq!(BackupManifest::parse("m", &ok).unwrap(), m);
        m.files[0].path = "../../etc/cron.d/x".into();
        let e = BackupManifest::parse("m", &serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        m.files.clear();
        m.version = 2;
        let e = BackupManifest::parse("m", &serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(BackupManifest::parse("m", b"{").is_err());
    }
}
