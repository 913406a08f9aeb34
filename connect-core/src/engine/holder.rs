//! Who holds the deploy lock: `user@host pid N`, read from the system, not from the environment.
//!
//! `$USER` and `$HOSTNAME` are whatever the caller's shell exported (cron and systemd set neither; `sudo`
//! keeps the invoking user's), so a lock would name the wrong person or `unknown`. The user is the passwd
//! entry of the effective uid (the account whose rights the deploy runs with) and the host is the kernel's
//! `gethostname`, both through `nix`'s safe wrappers.

use nix::unistd::{Uid, User, gethostname};

/// `user@host pid N`, so a lock names who took it: the effective user's login name (`uid N` when the
/// passwd database has no entry for it), the machine's host name, and this process's id.
pub fn default_holder() -> String {
    format!("{}@{} pid {}", effective_user(), host_name(), std::process::id())
}

/// The login name of the effective uid, or `uid N` when no passwd entry names it (a container running
/// under an arbitrary uid).
pub(crate) fn effective_user() -> String {
    let uid = Uid::effective();
    match User::from_uid(uid) {
        Ok(Some(user)) if !user.name.is_empty() => user.name,
        _ => format!("uid {uid}"),
    }
}

/// The kernel's host name (`gethostname(2)`), or `unknown-host` in the unlikely case it cannot be read.
pub(crate) fn host_name() -> String {
    gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}
