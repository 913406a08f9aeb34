//! The private key: read and checked before the network is touched, so a missing file, a wrong
//! passphrase or a key others can read fails at once.

use std::sync::Arc;

use russh::keys::PrivateKey;

use super::SshConfig;
use crate::error::{Error, ErrorKind, Result};

/// Reads the private key before any network traffic, so a missing file or wrong passphrase fails at once.
pub(crate) fn load_key(config: &SshConfig) -> Result<Option<Arc<PrivateKey>>> {
    let Some(path) = &config.key_file else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let (kind, hint) = match e.kind() {
            std::io::ErrorKind::NotFound => (
                ErrorKind::InvalidInput,
                "give the path of an existing private key (e.g. ~/.ssh/id_ed25519), or create one with ssh-keygen",
            ),
            std::io::ErrorKind::PermissionDenied => (
                ErrorKind::PermissionDenied,
                "make the key readable by this user (chmod 600, owned by you)",
            ),
            _ => (ErrorKind::InvalidInput, "check the key file"),
        };
        Error::new(kind, "ssh.load_key", &shown, format!("cannot read the key file: {e}"))
            .with_hint(hint)
            .with_source(e)
    })?;
    let key = russh::keys::decode_secret_key(&text, config.passphrase.as_deref()).map_err(|e| {
        let (msg, hint) = match (&e, &config.passphrase) {
            (russh::keys::Error::KeyIsEncrypted, _) => (
                "the key is encrypted".to_string(),
                "give its passphrase (SshConfig::passphrase) or use an ssh-agent",
            ),
            (_, Some(_)) => (
                format!("cannot decrypt or decode the key: {e}"),
                "check the passphrase and that the file is an OpenSSH or PEM private key",
            ),
            (_, None) => (
                format!("not a private key this SDK can read: {e}"),
                "give an OpenSSH or PEM private key (ed25519, RSA or ECDSA), not the .pub file",
            ),
        };
        Error::new(ErrorKind::InvalidInput, "ssh.load_key", &shown, msg).with_hint(hint)
    })?;
    refuse_unprotected(path, &shown)?;
    Ok(Some(Arc::new(key)))
}

/// Refuses a private key file that anyone but its owner may read or write, as OpenSSH does: such a key
/// must be taken as already stolen. (OpenSSH checks only files owned by the user; a key owned by another
/// user and readable through its group or by everyone is just as exposed, so it is refused too.) Checked
/// after decoding, so a `.pub` file given by mistake is named as such rather than as "unprotected".
fn refuse_unprotected(path: &std::path::Path, shown: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                "ssh.load_key",
                shown,
                format!("cannot stat the key file: {e}"),
            )
            .with_source(e)
        })?
        .permissions()
        .mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::PermissionDenied,
        "ssh.load_key",
        shown,
        format!(
            "UNPROTECTED PRIVATE KEY FILE: permissions {:04o} for '{shown}' are too open; a private key must not be accessible by others, so it is ignored",
            mode & 0o7777
        ),
    )
    .with_hint(format!(
        "chmod 600 {shown} (and make sure it is owned by the user running this), or use an ssh-agent"
    )))
}
