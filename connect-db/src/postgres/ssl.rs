//! PostgreSQL's TLS: libpq's `sslmode` words, applied alike to the SDK's own connections (tokio-postgres
//! with rustls) and to the client programs run on the host (`sslmode`/`sslrootcert` in their conninfo).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use connect_core::host::BoxStream;
use connect_core::{Error, ErrorKind, Result};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgTarget;
use crate::tls::{Verify, client_config, load_roots};

/// libpq's `sslmode`, with libpq's meaning. The default is `disable`: the runbook's PostgreSQL listens on
/// the server's loopback without TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Plain TCP.
    #[default]
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked (as libpq).
    Prefer,
    /// TLS or nothing; the certificate is not checked, unless a root CA is given, which then makes it
    /// `verify-ca` (as libpq does when its root certificate file exists).
    Require,
    /// TLS, and the certificate must be signed by the root CA; any host name.
    VerifyCa,
    /// TLS, the certificate signed by the root CA and naming the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq word (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether this mode checks the certificate against a root CA, so one must be given.
    pub fn needs_root_cert(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::invalid(
                    "postgres.sslmode",
                    other,
                    "not an sslmode: disable, prefer, require, verify-ca or verify-full",
                ));
            }
        })
    }
}

/// The setting a CA error names.
pub(crate) const ROOT_CERT_SETTING: &str = "ssl_root_cert (PgTarget::ssl_root_cert)";

impl PgTarget {
    /// Whether the connection goes over a unix socket, where libpq never uses TLS whatever `sslmode` says
    /// (the kernel already knows who is at the other end).
    pub(crate) fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The `sslmode` tokio-postgres is given: it knows disable, prefer and require; the verify modes are
    /// `require` plus the checks of the rustls configuration.
    pub(crate) fn driver_ssl_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self.ssl_mode {
            _ if self.is_socket() => Driver::Disable,
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Driver::Require,
        }
    }

    /// The TLS connector for this login, making the checks its `sslmode` asks for (the root CA file is read
    /// here, at each connection, so a renewed CA is picked up).
    pub(crate) fn tls_connector(&self, op: &str) -> Result<MakeRustlsConnect> {
        Ok(MakeRustlsConnect::new(self.tls_config(op)?))
    }

    /// The configuration for a stream already carrying TLS (see [`negotiate`]).
    pub(crate) fn raw_config(&self) -> tokio_postgres::Config {
        let mut c = self.config();
        c.ssl_mode(tokio_postgres::config::SslMode::Disable);
        c
    }

    fn tls_config(&self, op: &str) -> Result<ClientConfig> {
        let roots = match (&self.ssl_root_cert, self.driver_ssl_mode()) {
            (_, tokio_postgres::config::SslMode::Disable) => None,
            (Some(path), _) => Some(load_roots(op, ROOT_CERT_SETTING, path)?),
            (None, _) => None,
        };
        let verify = match (self.ssl_mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => Verify::Full(roots),
            (SslMode::VerifyFull | SslMode::VerifyCa, None) if !self.is_socket() => {
                return Err(self.missing_root_cert(op));
            }
            (_, Some(roots)) => Verify::Chain(roots),
            (_, None) => Verify::Nothing,
        };
        client_config(op, &verify)
    }

    pub(crate) fn missing_root_cert(&self, op: &str) -> Error {
        Error::invalid(
            op,
            self.to_string(),
            format!(
                "sslmode {} checks the server's certificate, but no root CA is given",
                self.ssl_mode
            ),
        )
        .with_hint("set ssl_root_cert to the CA certificate that signed PostgreSQL's ssl_cert_file")
    }
}

/// PostgreSQL's `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// TLS on a stream carried through a host, negotiated here as libpq does (an `SSLRequest`, the server's `S`
/// or `N`, then the handshake), so that `connect_raw` then runs the protocol on the returned stream. Done by
/// hand because tokio-postgres' own negotiation over a boxed stream is a future the compiler cannot prove
/// `Send` for.
pub(crate) async fn negotiate(op: &str, target: &PgTarget, mut stream: BoxStream) -> Result<BoxStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_postgres::config::SslMode as Driver;

    let mode = target.driver_ssl_mode();
    if mode == Driver::Disable {
        return Ok(stream);
    }
    let config = Arc::new(target.tls_config(op)?);
    let io = |e: std::io::Error| {
        Error::new(
            ErrorKind::Unavailable,
            op,
            target.to_string(),
            format!("PostgreSQL did not answer: {e}"),
        )
        .with_hint("is PostgreSQL running and listening on that address on the server?")
        .with_retryable(true)
        .with_source(e)
    };
    stream.write_all(&SSL_REQUEST).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.map_err(io)?;
    match answer[0] {
        b'S' => {}
        b'N' if mode == Driver::Prefer => return Ok(stream),
        b'N' => return Err(no_tls(op, target)),
        other => {
            return Err(Error::new(
                ErrorKind::Corrupt,
                op,
                target.to_string(),
                format!("answered the TLS request with {other:#04x}, not S or N"),
            )
            .with_hint("is this address PostgreSQL?"));
        }
    }
    let name = ServerName::try_from(target.host.clone()).map_err(|e| {
        Error::invalid(op, target.to_string(), format!("not a TLS server name: {e}")).with_source(e)
    })?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| match crate::tls::find_tls_error(&e) {
            Some(tls) => handshake(op, target, tls),
            None => io(e),
        })?;
    Ok(Box::pin(tls))
}

fn handshake(op: &str, target: &PgTarget, tls: &rustls::Error) -> Error {
    crate::tls::handshake_error(
        op,
        &target.to_string(),
        &target.host,
        tls,
        ROOT_CERT_SETTING,
        target.ssl_root_cert.as_deref(),
    )
}

fn no_tls(op: &str, target: &PgTarget) -> Error {
    Error::new(
        ErrorKind::Refused,
        op,
        target.to_string(),
        format!(
            "the server does not accept TLS, and sslmode {} requires it",
            target.ssl_mode
        ),
    )
    .with_hint("turn ssl on in PostgreSQL (Patroni: postgresql.parameters.ssl with ssl_cert_file/ssl_key_file), or set sslmode to prefer or disable")
}

/// A TLS failure of tokio-postgres as an error naming what to fix, or `None` when it was not one.
pub(crate) fn tls_failure(op: &str, target: &PgTarget, e: &tokio_postgres::Error) -> Option<Error> {
    if let Some(tls) = crate::tls::find_tls_error(e) {
        return Some(handshake(op, target, tls));
    }
    // tokio-postgres' own words when the server answers the SSLRequest with "no".
    let refused = e.to_string().contains("TLS")
        && std::iter::successors(std::error::Error::source(e), |s| s.source())
            .any(|s| s.to_string().contains("does not support TLS"));
    refused.then(|| no_tls(op, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_and_print_as_libpq_words() {
        for word in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(word.parse::<SslMode>().unwrap().to_string(), word);
        }
        assert!("verify_full".parse::<SslMode>().is_err());
        assert_eq!(SslMode::default(), SslMode::Disable);
    }

    #[test]
    fn verify_modes_need_a_root_ca_and_sockets_never_use_tls() {
        let t = PgTarget::new("u", "d").ssl_mode(SslMode::VerifyFull);
        let e = t.tls_connector("t").err().expect("no root CA");
        assert!(e.to_string().contains("ssl_root_cert"), "{e}");
        let socket = t.at("/run/postgresql", 5432);
        assert_eq!(socket.driver_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        assert!(socket.tls_connector("t").is_ok());
    }
}
