//! Who may use HAProxy's admin socket: the owner, group and mode HAProxy gives the socket file it creates.
//!
//! HAProxy's runtime API has no authentication of its own: whoever can `connect(2)` to the socket is an
//! admin. The file's permissions are therefore the access control, and the way to let a non-root deploy user
//! switch traffic is a group: `stats socket /run/haproxy/admin.sock mode 660 level admin group deploy`, with
//! the deploy user a member of `deploy`.

use connect_core::{Error, Result};

/// The owner, group and mode of a `stats socket` (HAProxy's `user`, `group` and `mode` bind options).
/// The default is HAProxy's own: the user HAProxy starts as, its group, mode 600.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAccess {
    /// Permission bits (octal `660` is `0o660`). Bits for "others" are refused: they would make every
    /// local user an HAProxy admin.
    pub mode: u32,
    /// The socket's owner (`user <name>`); HAProxy's user when `None`.
    pub user: Option<String>,
    /// The socket's group (`group <name>`); HAProxy's group when `None`.
    pub group: Option<String>,
}

impl Default for SocketAccess {
    fn default() -> Self {
        SocketAccess {
            mode: 0o600,
            user: None,
            group: None,
        }
    }
}

impl SocketAccess {
    /// Mode 660 for `group`: its members (the deploy user) reach the socket without root.
    pub fn group(group: &str) -> SocketAccess {
        SocketAccess {
            mode: 0o660,
            user: None,
            group: Some(group.to_string()),
        }
    }

    /// Reads a mode written as octal digits, as `chmod` takes it (`"660"`, `"0660"`).
    pub fn parse_mode(text: &str) -> Result<u32> {
        let digits = text.trim();
        let mode = (!digits.is_empty() && digits.len() <= 4)
            .then(|| u32::from_str_radix(digits, 8).ok())
            .flatten()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                Error::invalid(
                    "haproxy.socket_access",
                    text,
                    "a socket mode is three octal digits, as chmod takes them",
                )
                .with_hint("e.g. \"660\": owner and group read and write")
            })?;
        Ok(mode)
    }

    /// The bind options (`mode 660 user haproxy group deploy`), after checking them.
    pub fn options(&self) -> Result<String> {
        const OP: &str = "haproxy.socket_access";
        if self.mode > 0o777 {
            return Err(Error::invalid(
                OP,
                format!("{:o}", self.mode),
                "a socket mode has at most three octal digits",
            ));
        }
        if self.mode & 0o007 != 0 {
            return Err(Error::invalid(
                OP,
                format!("{:03o}", self.mode),
                "the admin socket would be open to every local user, each then an HAProxy admin",
            )
            .with_hint("give the deploy user a group and use mode 660 with that group"));
        }
        let mut options = format!("mode {:03o}", self.mode);
        for (word, name) in [("user", &self.user), ("group", &self.group)] {
            if let Some(name) = name {
                check_account_name(word, name)?;
                options.push_str(&format!(" {word} {name}"));
            }
        }
        Ok(options)
    }
}

/// A user or group name as `useradd` accepts it, so nothing else can ride into the config line.
fn check_account_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "haproxy.socket_access",
            name,
            format!("{name:?} is not a {what} name (letters, digits, `_.-`, not starting with `-`)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_render_and_refuse_what_would_open_the_socket() {
        assert_eq!(SocketAccess::default().options().unwrap(), "mode 600");
        assert_eq!(
            SocketAccess::group("deploy").options().unwrap(),
            "mode 660 group deploy"
        );
        let owned = SocketAccess {
            mode: 0o640,
            user: Some("haproxy".into()),
            group: Some("deploy".into()),
        };
        assert_eq!(owned.options().unwrap(), "mode 640 user haproxy group deploy");
        let open = SocketAccess {
            mode: 0o666,
            ..SocketAccess::default()
        };
        assert!(
            open.options()
                .unwrap_err()
                .to_string()
                .contains("every local user")
        );
        assert!(SocketAccess::group("deploy level user").options().is_err());
        assert!(SocketAccess::group("-x").options().is_err());
        assert_eq!(SocketAccess::parse_mode("660").unwrap(), 0o660);
        assert_eq!(SocketAccess::parse_mode("0640").unwrap(), 0o640);
        for bad in ["", "9", "rw", "1777", "66666"] {
            assert!(SocketAccess::parse_mode(bad).is_err(), "{bad}");
        }
    }
}
