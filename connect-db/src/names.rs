//! Names are names: the checks and encodings that keep a database name, a label, a host or a URL from
//! meaning more than it says, wherever one ends up in a connection string, a file name or a URL.

use std::net::IpAddr;

use connect_core::{Error, Result};

/// Refuses a host that is not a plain host name, an IP address or (when `socket_dir` is allowed) an
/// absolute unix socket directory. libpq reads `a,b` as two hosts to try and `user@host`, `host/db` or
/// `host?x=y` are URL pieces: none of them belongs in a host.
pub(crate) fn check_host(op: &str, host: &str, socket_dir: bool) -> Result<()> {
    let bad = |why: &str| {
        Error::invalid(op, host, format!("not a host: {why}"))
            .with_hint("give a host name or an IP address (PostgreSQL also takes a socket directory such as /run/postgresql); credentials go in their own settings")
    };
    if host.is_empty() {
        return Err(bad("it is empty"));
    }
    if host.starts_with('/') {
        if !socket_dir {
            return Err(bad("a path is not an address here"));
        }
        // A socket directory: any path, but one path (libpq splits on commas) with no control characters.
        if host.contains(',') || host.chars().any(char::is_control) {
            return Err(bad("a socket directory with a comma or a control character"));
        }
        return Ok(());
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.len() > 253 || !host.trim_end_matches('.').split('.').all(label_ok) {
        let why = match host
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && !"-_.".contains(*c))
        {
            Some('@') => "`@`: credentials do not belong in a host".to_string(),
            Some(c) => format!("{c:?} cannot be in a host name"),
            None => "not a valid host name".to_string(),
        };
        return Err(bad(&why));
    }
    Ok(())
}

/// Refuses a port of 0.
pub(crate) fn check_port(op: &str, target: &str, port: u16) -> Result<()> {
    if port == 0 {
        return Err(
            Error::invalid(op, target, "port 0 is not a port").with_hint("give the port it listens on")
        );
    }
    Ok(())
}

/// An `http://host:port` or `https://host:port` base URL, checked and normalised (no trailing slash). A
/// user or password in it is refused: the URL ends up in messages and logs, and a host string must not be
/// able to bring credentials of its own.
pub(crate) fn http_base_url(op: &str, url: &str) -> Result<String> {
    let hint = "write it as http://HOST:PORT, e.g. http://patroni1.internal:8008";
    let parsed = reqwest::Url::parse(url.trim_end_matches('/')).map_err(|e| {
        Error::invalid(op, url, format!("not a URL: {e}"))
            .with_hint(hint)
            .with_source(e)
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid(op, url, "not an http(s) URL").with_hint(hint));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            Error::invalid(op, url, "credentials in the URL are refused").with_hint(
                "remove user:password@ from the address; Patroni's REST API is reached without them",
            ),
        );
    }
    let Some(host) = parsed.host_str() else {
        return Err(Error::invalid(op, url, "no host in the URL").with_hint(hint));
    };
    check_host(op, host.trim_start_matches('[').trim_end_matches(']'), false)?;
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::invalid(op, url, "a base URL has no path, query or fragment").with_hint(hint));
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    check_port(op, url, port)?;
    Ok(format!("{}://{host}:{port}", parsed.scheme()))
}

/// Refuses a database or role name no server accepts (empty, NUL). Anything else is a legal PostgreSQL
/// name and is passed quoted, never parsed.
pub(crate) fn check_pg_name(op: &str, what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::invalid(
            op,
            name,
            format!("the {what} is empty or contains NUL"),
        ));
    }
    Ok(())
}

/// A label in a file name (a deploy id): letters, digits, `-`, `_` and `.`, not starting with a dot and
/// without `..`, so it can never name a hidden file or climb out of its directory.
pub(crate) fn check_label(op: &str, label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && !label.starts_with('.')
        && !label.contains("..")
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return Err(Error::invalid(
            op,
            label,
            "a deploy id is letters, digits, - _ and ., not starting with a dot",
        )
        .with_hint("use the release tag or a timestamp, e.g. 20251013-1400"));
    }
    Ok(())
}

/// A database name as one file-name component: bytes outside `[A-Za-z0-9_=+,@-]` (and a leading `.`) are
/// written `%XX`, so `/`, `..`, NUL, newlines or `postgresql://…` cannot leave the backup directory, hide
/// the file, or break a listing; `shop` stays `shop`.
pub(crate) fn file_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"_=+,@-".contains(&b) || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One value of a libpq connection string, quoted: `'…'` with `\` and `'` escaped, so it is read as this
/// one value whatever it contains (`=`, spaces, `postgresql://`).
pub(crate) fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use connect_core::ErrorKind;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn hosts_are_names_addresses_or_socket_dirs() {
        for ok in ["127.0.0.1", "::1", "db1.internal", "patroni_1", "localhost."] {
            check_host("t", ok, false).unwrap();
        }
        check_host("t", "/run/postgresql", true).unwrap();
        for bad in [
            "",
            "a,b",
            "user:pw@db",
            "db/x",
            "db?sslmode=disable",
            "db 1",
            "-x",
            "db:5432",
            "a..b",
            "/run/pg",
        ] {
            let e = check_host("t", bad, false).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
        }
        assert!(
            check_host("t", "user@db", false)
                .unwrap_err()
                .message()
                .contains("credentials")
        );
        assert!(check_host("t", "/run/a,/run/b", true).is_err());
    }

    #[test]
    fn base_urls_have_no_credentials_path_or_query() {
        assert_eq!(
            http_base_url("t", "http://127.0.0.1:8008/").unwrap(),
            "http://127.0.0.1:8008"
        );
        assert_eq!(
            http_base_url("t", "https://db1.internal").unwrap(),
            "https://db1.internal:443"
        );
        assert_eq!(
            http_base_url("t", "http://[::1]:8008").unwrap(),
            "http://[::1]:8008"
        );
        for bad in [
            "db1:8008",
            "ftp://db1",
            "http://u:p@db1:8008",
            "http://u@db1:8008",
            "http://db1:8008/patroni",
            "http://db1:8008?x=1",
            "http://db1:0",
            "http://",
        ] {
            assert_eq!(
                http_base_url("t", bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad}"
            );
        }
        assert!(
            http_base_url("t", "http://u:p@db1")
                .unwrap_err()
                .message()
                .contains("credentials")
        );
    }

    #[test]
    fn labels_stay_in_their_directory() {
        check_label("t", "20251013-1400").unwrap();
        check_label("t", "v1.2.3").unwrap();
        for bad in ["", "..", ".hidden", "a/b", "a..b", "a\0b", "a b"] {
            assert!(check_label("t", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conninfo_values_are_quoted() {
        assert_eq!(conninfo_value("shop"), "'shop'");
        assert_eq!(conninfo_value(r"it's a \ db"), r"'it\'s a \\ db'");
    }

    proptest! {
        #[test]
        fn a_file_component_is_one_plain_component(name in "\\PC{0,40}|[./%\\\\\\x00\\n]{0,8}") {
            let c = file_component(&name);
            prop_assert!(!c.contains('/') && !c.contains('\0') && !c.contains('\n'));
            prop_assert!(!c.starts_with('.'));
            prop_assert!(c != ".." && c != ".");
            // Distinct names stay distinct (the encoding is injective: `%` itself is encoded).
            let other = format!("{name}x");
            prop_assert_ne!(file_component(&other), c);
        }
    }
}
