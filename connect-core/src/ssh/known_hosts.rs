//! Checking the server's key against a known_hosts file (OpenSSH's format: plain, wildcard, negated and
//! hashed host patterns, `[host]:port` for other ports, `@revoked` and `@cert-authority` markers).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hmac::{KeyInit, Mac};
use russh::keys::{Algorithm, HashAlg, PublicKey};

use crate::error::{Error, ErrorKind, Result};

/// What the known_hosts file says about the server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A line records this very key.
    Known,
    /// No line records a key of this type for this host.
    Unknown,
    /// A line records another key of the same type: possibly a man in the middle.
    Changed {
        /// 1-based line number.
        line: usize,
    },
    /// No line records a key of this type, but a line pins the host to a key of another type. A server
    /// keeps its keys; a client that is shown a type it did not ask for first (see [`known_algorithms`]) is
    /// most likely talking to someone who lacks the pinned key, so this is refused like a changed key.
    OtherType {
        /// 1-based line number.
        line: usize,
        /// The recorded key's type, e.g. `ssh-ed25519`.
        recorded: String,
    },
    /// The key is marked `@revoked`.
    Revoked {
        /// 1-based line number.
        line: usize,
    },
}

/// How the host appears in known_hosts: bare on port 22, `[host]:port` otherwise.
pub(crate) fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn malformed(path: &Path, line: usize, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "ssh.known_hosts",
        format!("{}:{line}", path.display()),
        format!("malformed known_hosts line: {why}"),
    )
    .with_hint(format!(
        "fix or delete line {line} of {} (each line is `HOSTS KEYTYPE BASE64KEY`)",
        path.display()
    ))
}

/// Checks `key` for `host:port` against the file at `path`. A missing file knows no host.
pub(crate) fn check(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<Verdict> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verdict::Unknown),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "ssh.known_hosts",
                path.display().to_string(),
                format!("cannot read the known_hosts file: {e}"),
            )
            .with_hint("make the file readable by this user, or point known_hosts at another file")
            .with_source(e));
        }
    };
    let mut verdict = Verdict::Unknown;
    let mut other_type = None;
    for entry in entries(path, &text, host, port) {
        let Entry {
            line,
            marker,
            key: recorded,
        } = entry?;
        match marker {
            Some("@cert-authority") => continue,
            Some("@revoked") => {
                if recorded.key_data() == key.key_data() {
                    return Ok(Verdict::Revoked { line });
                }
                continue;
            }
            Some(other) => return Err(malformed(path, line, &format!("unknown marker {other}"))),
            None => {}
        }
        if recorded.algorithm() != key.algorithm() {
            other_type.get_or_insert((line, recorded.algorithm().to_string()));
            continue;
        }
        if recorded.key_data() == key.key_data() {
            verdict = Verdict::Known;
        } else if verdict == Verdict::Unknown {
            verdict = Verdict::Changed { line };
        }
    }
    Ok(match (verdict, other_type) {
        (Verdict::Unknown, Some((line, recorded))) => Verdict::OtherType { line, recorded },
        (verdict, _) => verdict,
    })
}

/// The key types known_hosts records for `host:port` (not revoked), in file order: the client asks the
/// server for these first, as OpenSSH does, so a server with several keys shows the pinned one. An
/// unreadable or malformed file gives none here; [`check`] reports it.
pub(crate) fn known_algorithms(path: &Path, host: &str, port: u16) -> Vec<Algorithm> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut found: Vec<Algorithm> = Vec::new();
    for entry in entries(path, &text, host, port).flatten() {
        let algorithm = entry.key.algorithm();
        if entry.marker.is_none() && !found.contains(&algorithm) {
            found.push(algorithm);
        }
    }
    found
}

/// A known_hosts line about the host.
struct Entry<'a> {
    line: usize,
    marker: Option<&'a str>,
    key: PublicKey,
}

/// The lines whose host patterns match `host:port`, decoded; a malformed line is an error.
fn entries<'a>(
    path: &'a Path,
    text: &'a str,
    host: &str,
    port: u16,
) -> impl Iterator<Item = Result<Entry<'a>>> + 'a {
    let wanted = host_pattern(host, port);
    text.lines().enumerate().filter_map(move |(i, raw)| {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        let mut fields = trimmed.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let marker = if first.starts_with('@') {
            let m = first;
            first = fields.next().unwrap_or_default();
            Some(m)
        } else {
            None
        };
        let (Some(_key_type), Some(b64)) = (fields.next(), fields.next()) else {
            return Some(Err(malformed(path, line, "expected `HOSTS KEYTYPE BASE64KEY`")));
        };
        if !hosts_match(first, &wanted) {
            return None;
        }
        Some(
            russh::keys::parse_public_key_base64(b64)
                .map(|key| Entry { line, marker, key })
                .map_err(|e| malformed(path, line, &format!("the key does not decode: {e}"))),
        )
    })
}

/// Records the key for `host:port` (trust on first use) as one new line at the end of the file, creating
/// the file (mode 600) if needed.
///
/// The file is appended to, never rewritten: the other lines, the file's mode, owner and inode (a symlinked
/// or shared known_hosts) stay as they are, and the line goes out in one `write(2)` on an `O_APPEND`
/// descriptor, which the kernel never interleaves with another appender's. A last line without its newline
/// gets one first, so the new line cannot merge into it. A key another process recorded meanwhile is not
/// recorded twice.
pub(crate) fn learn(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<()> {
    let fail = |e: std::io::Error| {
        Error::new(
            ErrorKind::PermissionDenied,
            "ssh.known_hosts",
            path.display().to_string(),
            format!("cannot record the server key: {e}"),
        )
        .with_hint("make the known_hosts file and its directory writable by this user")
    };
    let encoded = key
        .to_openssh()
        .map_err(|e| Error::new(ErrorKind::Failed, "ssh.known_hosts", host, e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    let mut existing = String::new();
    file.read_to_string(&mut existing).map_err(fail)?;
    if check(path, host, port, key)? == Verdict::Known {
        return Ok(());
    }
    let mut line = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(&format!("{} {}\n", host_pattern(host, port), encoded.trim_end()));
    file.write_all(line.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn hosts_match(patterns: &str, wanted: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated, wanted) {
                return false;
            }
        } else if pattern.starts_with("|1|") {
            matched |= hashed_match(pattern, wanted);
        } else {
            matched |= glob(pattern, wanted);
        }
    }
    matched
}

fn hashed_match(pattern: &str, wanted: &str) -> bool {
    let mut parts = pattern.split('|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let b64 = data_encoding::BASE64;
    let (Ok(salt), Ok(hash)) = (b64.decode(salt.as_bytes()), b64.decode(hash.as_bytes())) else {
        return false;
    };
    let Ok(mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(wanted.as_bytes()).verify_slice(&hash).is_ok()
}

/// OpenSSH's host glob: `*` any run, `?` one character, case-insensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIN+vrts6rxrmbsgYhNtfoG/yVCW1lXK+zMLY5QaQYPwb";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIIeYLhr2HFfq2zRrwevvQx2ZFeUrOW6fDeT0d41wSmXY";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).expect("test key")
    }

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        f.write_all(content.as_bytes()).expect("write");
        f
    }

    #[test]
    fn known_unknown_and_changed() {
        let f = file(&format!(
            "# comment\n\n[127.0.0.1]:2222 ssh-ed25519 {KEY_A}\nother ssh-ed25519 {KEY_B}\n"
        ));
        let p = f.path();
        assert_eq!(check(p, "127.0.0.1", 2222, &key(KEY_A)).unwrap(), Verdict::Known);
        assert_eq!(check(p, "127.0.0.1", 22, &key(KEY_A)).unwrap(), Verdict::Unknown);
        assert_eq!(
            check(p, "127.0.0.1", 2222, &key(KEY_B)).unwrap(),
            Verdict::Changed { line: 3 }
        );
    }

    #[test]
    fn wildcards_negation_and_revocation() {
        let f = file(&format!(
            "*.example.com,!bad.example.com ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_B}\n"
        ));
        let p = f.path();
        assert_eq!(
            check(p, "web.example.com", 22, &key(KEY_A)).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            check(p, "bad.example.com", 22, &key(KEY_A)).unwrap(),
            Verdict::Unknown
        );
        assert_eq!(
            check(p, "any", 22, &key(KEY_B)).unwrap(),
            Verdict::Revoked { line: 2 }
        );
    }

    #[test]
    fn hashed_hosts_match() {
        // `ssh-keygen -H` output for "prod-host".
        let salt = [7u8; 20];
        let mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt)
            .unwrap()
            .chain_update(b"prod-host")
            .finalize()
            .into_bytes();
        let b64 = data_encoding::BASE64;
        let f = file(&format!(
            "|1|{}|{} ssh-ed25519 {KEY_A}\n",
            b64.encode(&salt),
            b64.encode(&mac)
        ));
        assert_eq!(
            check(f.path(), "prod-host", 22, &key(KEY_A)).unwrap(),
            Verdict::Known
        );
        assert_eq!(
            check(f.path(), "other", 22, &key(KEY_A)).unwrap(),
            Verdict::Unknown
        );
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        let f = file(&format!("ok ssh-ed25519 {KEY_A}\nhost ssh-ed25519 not-base64!\n"));
        let e = check(f.path(), "host", 22, &key(KEY_A)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains(&format!("{}:2", f.path().display())),
            "{e}"
        );
        let f = file("just-one-field\n");
        assert!(
            check(f.path(), "x", 22, &key(KEY_A))
                .unwrap_err()
                .to_string()
                .contains(":1")
        );
    }

    #[test]
    fn a_host_pinned_to_another_key_type_is_not_unknown() {
        const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBKAVW8z/+qbM8APTvkoYGil+3Jsv8PhB6SEqOTpnmBWXf2norvEUucbjpwJPFEE3UmXM6O8cNfBplkHFZQWOsV0=";
        let f = file(&format!(
            "host ecdsa-sha2-nistp256 {ECDSA}\nhost ssh-ed25519 {KEY_A}\n"
        ));
        let p = f.path();
        assert_eq!(
            check(p, "host", 22, &key(KEY_B)).unwrap(),
            Verdict::Changed { line: 2 },
            "a changed key of the same type says so"
        );
        let f = file(&format!("host ecdsa-sha2-nistp256 {ECDSA}\n"));
        assert_eq!(
            check(f.path(), "host", 22, &key(KEY_A)).unwrap(),
            Verdict::OtherType {
                line: 1,
                recorded: "ecdsa-sha2-nistp256".into()
            }
        );
        assert_eq!(
            known_algorithms(p, "host", 22),
            vec![key(ECDSA).algorithm(), key(KEY_A).algorithm()]
        );
        assert!(known_algorithms(p, "elsewhere", 22).is_empty());
    }

    #[test]
    fn learning_never_merges_lines_nor_changes_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let f = file(&format!("other ssh-ed25519 {KEY_B}"));
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
        learn(f.path(), "host", 22, &key(KEY_A)).unwrap();
        learn(f.path(), "host", 22, &key(KEY_A)).unwrap();
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert_eq!(
            text,
            format!("other ssh-ed25519 {KEY_B}\nhost ssh-ed25519 {KEY_A}\n"),
            "one line, appended once"
        );
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn learning_appends_a_line_that_checks_as_known() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/known_hosts");
        learn(&p, "127.0.0.1", 2200, &key(KEY_A)).unwrap();
        assert_eq!(check(&p, "127.0.0.1", 2200, &key(KEY_A)).unwrap(), Verdict::Known);
        assert!(fingerprint(&key(KEY_A)).starts_with("SHA256:"));
    }
}
