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
///
/// `mode` and `owner` were added after the first sets were written: a manifest without them still reads
/// (they are `None`), and [`put_back`](super::put_back) says what it assumed instead. They are optional
/// rather than a new format, so an older connect-ops still reads a newer set (and writes its files with
/// the mode it always did).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative to the set's directory; its first component is the part.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its permission bits as the set holds them (`rsync -a` keeps the original's), written in octal
    /// (`"0640"`); `None` in a manifest from before modes were kept.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "octal")]
    pub mode: Option<u32>,
    /// Its owner as the set holds it: the original's when the set was taken as root (`rsync -a` keeps
    /// owners only then), else the login's; `None` in a manifest from before owners were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<FileOwner>,
}

/// Who owns a file: the numbers, and the names when the host that took the set knew them (names are
/// what a recovery applies first, since a fresh server may number its system users differently).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOwner {
    /// The user's id.
    pub uid: u32,
    /// The group's id.
    pub gid: u32,
    /// The user's name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The group's name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A mode as an octal string (`"0640"`), which is how people read modes.
mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(mode: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match mode {
            Some(m) => s.serialize_str(&format!("{m:04o}")),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => u32::from_str_radix(&text, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not a file mode: {text:?}"))),
        }
    }
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

/// What `find -printf` says of one file, before it is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) path: String,
    pub(crate) bytes: u64,
    pub(crate) mode: u32,
    pub(crate) owner: FileOwner,
}

/// The `find -printf` format [`parse_listing`] reads: size, mode (octal), uid, gid, user and group names
/// (`find` prints the number when there is no name), path.
pub(crate) const LISTING_FORMAT: &str = "%s %m %U %G %u %g %P\\0";

/// `find -printf LISTING_FORMAT` output.
pub(crate) fn parse_listing(out: &[u8]) -> Result<Vec<Listed>> {
    let mut files = Vec::new();
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let text = std::str::from_utf8(record).map_err(|_| bad_listing("find", "a path is not UTF-8"))?;
        let bad = || bad_listing("find", text);
        let mut fields = text.splitn(7, ' ');
        let mut next = || fields.next().ok_or_else(bad);
        let (bytes, mode, uid, gid) = (next()?, next()?, next()?, next()?);
        let (user, group, path) = (next()?, next()?, next()?);
        let bytes = bytes.parse().map_err(|_| bad())?;
        let mode = u32::from_str_radix(mode, 8).map_err(|_| bad())?;
        let uid: u32 = uid.parse().map_err(|_| bad())?;
        let gid: u32 = gid.parse().map_err(|_| bad())?;
        // A name that is the number is `find` saying there is no name.
        let name = |name: &str, id: u32| (name != id.to_string()).then(|| name.to_string());
        files.push(Listed {
            path: path.to_string(),
            bytes,
            mode,
            owner: FileOwner {
                uid,
                gid,
                user: name(user, uid),
                group: name(group, gid),
            },
        });
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
        let listed =
            parse_listing(b"12 640 0 33 root www-data uploads/a b\x000 600 1001 1001 1001 1001 journal/j\0")
                .unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|l| (l.path.as_str(), l.bytes, l.mode))
                .collect::<Vec<_>>(),
            [("uploads/a b", 12, 0o640), ("journal/j", 0, 0o600)]
        );
        assert_eq!(
            listed[0].owner,
            FileOwner {
                uid: 0,
                gid: 33,
                user: Some("root".into()),
                group: Some("www-data".into())
            }
        );
        assert_eq!(
            (listed[1].owner.user.clone(), listed[1].owner.group.clone()),
            (None, None)
        );
        for bad in [
            &b"x 640 0 0 r r uploads/a\0"[..],
            b"1 9x 0 0 r r a\0",
            b"1 640 0 0 r\0",
        ] {
            assert!(parse_listing(bad).is_err(), "{bad:?}");
        }
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
                mode: Some(0o640),
                owner: None,
            }],
        };
        let ok = serde_json::to_vec(&m).unwrap();
        assert!(String::from_utf8_lossy(&ok).contains(r#""mode":"0640""#));
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

    #[test]
    fn a_manifest_from_before_modes_and_owners_still_reads() {
        let hash = "0".repeat(64);
        let old = format!(
            r#"{{"version":1,"id":"20260528T202640Z","taken_at_unix":1780000000,"taken_at":"2026-05-28T20:26:40Z",
                "took_ms":1,"source":"local","parts":[],"missing":[],
                "files":[{{"path":"configs/etc/app.conf","bytes":1,"sha256":"{hash}"}}]}}"#
        );
        let m = BackupManifest::parse("m", old.as_bytes()).expect("an old manifest reads");
        assert_eq!((m.files[0].mode, m.files[0].owner.clone()), (None, None));
        let bad = old.replace(r#""bytes":1,"#, r#""bytes":1,"mode":"0999","#);
        assert_eq!(
            BackupManifest::parse("m", bad.as_bytes()).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }
}
