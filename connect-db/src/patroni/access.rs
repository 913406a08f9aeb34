//! Reaching a Patroni REST API that is locked down: basic auth (`restapi.authentication`) and HTTPS
//! (`restapi.certfile`/`keyfile`) verified against a CA of the caller's choosing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use connect_core::{Error, ErrorKind, Result};

use super::{Patroni, REQUEST_TIMEOUT};
use crate::tls::{Verify, client_config, load_roots};

/// The setting a CA error names: the connect.toml key and the builder method that set it.
pub(crate) const CA_SETTING: &str = "the Patroni CA file (patroni_ca_file / Patroni::with_ca_file)";

/// Patroni's `restapi.authentication`: the username and password its unsafe endpoints (switchover,
/// failover, restart, reload, config) require. The password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// `restapi.authentication.username`.
    pub username: String,
    password: String,
}

impl BasicAuth {
    /// Credentials for Patroni's REST API.
    pub fn new(username: &str, password: &str) -> BasicAuth {
        BasicAuth {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    /// The `Authorization` header's value.
    pub(crate) fn header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", data_encoding::BASE64.encode(pair.as_bytes()))
    }

    fn validate(&self) -> Result<()> {
        // A `:` in the username would move the split between the two; control characters cannot travel
        // in a header.
        if self.username.contains(':')
            || [&self.username, &self.password]
                .iter()
                .any(|s| s.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                "patroni.auth",
                &self.username,
                "the username has a `:`, or the username or password a control character",
            )
            .with_hint("basic auth cannot carry these; change restapi.authentication"));
        }
        Ok(())
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The TLS settings of a Patroni client.
#[derive(Clone)]
pub(crate) struct PatroniTls {
    /// The CA that signed Patroni's `restapi.certfile`; the system's CAs when `None`.
    pub ca_file: Option<PathBuf>,
    /// The client configuration built from it, shared by the direct client and the through-host one.
    pub config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for PatroniTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatroniTls")
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl PatroniTls {
    pub(crate) fn system() -> Result<PatroniTls> {
        Ok(PatroniTls {
            ca_file: None,
            config: Arc::new(client_config("patroni.new", &Verify::System)?),
        })
    }

    fn with_ca(path: &Path) -> Result<PatroniTls> {
        let roots = load_roots("patroni.ca_file", CA_SETTING, path)?;
        Ok(PatroniTls {
            ca_file: Some(path.to_path_buf()),
            config: Arc::new(client_config("patroni.ca_file", &Verify::Full(roots))?),
        })
    }

    /// A reqwest client that verifies with this configuration (reqwest gets no TLS setup of its own).
    pub(crate) fn http_client(&self, target: &str) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(REQUEST_TIMEOUT)
            .tls_backend_preconfigured((*self.config).clone())
            .build()
            .map_err(|e| Error::new(ErrorKind::Failed, "patroni.new", target, e.to_string()).with_source(e))
    }
}

impl Patroni {
    /// Sends `restapi.authentication`'s username and password with every request (Patroni asks for them
    /// on its unsafe endpoints: switchover, failover, restart, reload, config). A wrong pair is
    /// [`ErrorKind::PermissionDenied`].
    pub fn with_auth(mut self, auth: BasicAuth) -> Result<Patroni> {
        auth.validate()?;
        self.auth = Some(auth);
        Ok(self)
    }

    /// Verifies the nodes' HTTPS certificates (`https://` node addresses; Patroni's `restapi.certfile`)
    /// against the CA certificates in this PEM file instead of the system's, and checks that they name the
    /// node's host. Read now: a missing or empty file is an error here, not at the first request.
    pub fn with_ca_file(mut self, path: impl AsRef<Path>) -> Result<Patroni> {
        let tls = PatroniTls::with_ca(path.as_ref())?;
        self.http = tls.http_client(&self.nodes[0])?;
        self.tls = tls;
        Ok(self)
    }

    /// The credentials sent, if any.
    pub fn auth(&self) -> Option<&BasicAuth> {
        self.auth.as_ref()
    }

    /// The CA file the nodes' certificates are checked against (`None`: the system's CAs).
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.ca_file.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_prints_and_the_header_is_basic() {
        let auth = BasicAuth::new("patroni", "s3cret");
        assert!(!format!("{auth:?}").contains("s3cret"));
        // RFC 7617's own example.
        assert_eq!(
            BasicAuth::new("Aladdin", "open sesame").header(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let p = Patroni::new(&["http://127.0.0.1:8008"])
            .unwrap()
            .with_auth(auth)
            .unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
        assert!(
            Patroni::new(&["http://127.0.0.1:8008"])
                .unwrap()
                .with_auth(BasicAuth::new("a:b", "c"))
                .is_err()
        );
    }
}
