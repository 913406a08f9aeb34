//! TLS for Patroni's REST API and PostgreSQL on one stack: rustls with the ring provider (the one russh
//! already builds), with exactly the certificate checks each setting asks for, and handshake failures turned
//! into errors that name the setting to fix.

use std::path::Path;
use std::sync::Arc;

use connect_core::{Error, ErrorKind, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The one crypto provider every TLS connection uses. rustls 0.23.48 deprecates ring's for lacking
/// post-quantum key exchange; aws-lc-rs has it but is a C build of minutes on this project's machines, and
/// ring is already built for russh. Classical key exchange to Patroni and PostgreSQL on the server's network
/// is what libpq and Patroni's own clients do today.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which checks of the server's certificate a connection makes.
#[derive(Debug, Clone)]
pub(crate) enum Verify {
    /// None: the connection is encrypted, but anyone can be at the other end (libpq's `require`). The
    /// handshake's signatures are still checked.
    Nothing,
    /// The chain must lead to one of these CAs; the name in the certificate is not checked (`verify-ca`).
    Chain(Arc<RootCertStore>),
    /// The chain must lead to one of these CAs and the certificate must name the host (`verify-full`).
    Full(Arc<RootCertStore>),
    /// The operating system's trusted CAs, with the name checked.
    System,
}

/// Reads the CA certificates of a PEM file. `setting` names the key that gave the path, so an error says
/// which setting to fix.
pub(crate) fn load_roots(op: &str, setting: &str, path: &Path) -> Result<Arc<RootCertStore>> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Failed,
        };
        Error::new(kind, op, &shown, format!("{setting}: cannot read the CA file: {e}"))
            .with_hint(format!(
                "set {setting} to a readable PEM file with the CA certificate that signed the server's certificate"
            ))
            .with_source(e)
    })?;
    let mut roots = RootCertStore::empty();
    let mut bad = None;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        match cert.map(|c| roots.add(c)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bad = Some(e.to_string()),
            Err(e) => bad = Some(e.to_string()),
        }
    }
    if roots.is_empty() {
        let why = bad.map_or_else(
            || "no PEM certificate in it".to_string(),
            |b| format!("unreadable: {b}"),
        );
        return Err(
            Error::invalid(op, &shown, format!("{setting}: {why}")).with_hint(format!(
                "set {setting} to the CA certificate (-----BEGIN CERTIFICATE-----) that signed the server's"
            )),
        );
    }
    Ok(Arc::new(roots))
}

/// A client configuration making the checks `verify` asks for.
pub(crate) fn client_config(op: &str, verify: &Verify) -> Result<ClientConfig> {
    let provider = provider();
    let failed = |e: String| Error::new(ErrorKind::Failed, op, "tls", e);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()).with_source(e))?;
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(Lenient {
            provider,
            chain: None,
        }),
        Verify::Chain(roots) => Arc::new(Lenient {
            chain: Some(webpki(roots, provider.clone()).map_err(failed)?),
            provider,
        }),
        Verify::Full(roots) => webpki(roots, provider).map_err(failed)?,
        Verify::System => Arc::new(
            rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| failed(e.to_string()).with_source(e))?,
        ),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn webpki(
    roots: &Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
) -> std::result::Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
        .build()
        .map_err(|e| e.to_string())
}

/// The two settings that check less than webpki: `require` (any certificate) and `verify-ca` (the chain,
/// not the name). Either way the handshake must be signed by the certificate's key, checked with the
/// provider's algorithms as webpki's own verifier does.
#[derive(Debug)]
struct Lenient {
    provider: Arc<CryptoProvider>,
    /// `verify-ca`'s full check, whose complaint about the name alone is overruled; `None` for `require`.
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain before the name, so a name error means the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls error somewhere in `e`'s chain of sources, when the failure was the TLS handshake's. An
/// `io::Error`'s `source()` skips the error it wraps (hyper-rustls wraps rustls' in two of them), so its
/// payload is followed instead.
pub(crate) fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(e);
    // Bounded: a chain is a handful of links; a cycle must not hang us.
    for _ in 0..32 {
        let e = current?;
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(payload) => Some(payload as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// A failed handshake as an error naming what to fix: the CA setting when the certificate's issuer is not
/// trusted, the address when the certificate names another host. Not retryable: trying again meets the same
/// certificate.
pub(crate) fn handshake_error(
    op: &str,
    target: &str,
    host: &str,
    tls: &rustls::Error,
    ca_setting: &str,
    ca: Option<&Path>,
) -> Error {
    let trusted = ca.map_or_else(
        || "the system's trusted CAs".to_string(),
        |p| format!("the CA in {ca_setting} ({})", p.display()),
    );
    let (why, hint) = match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => (
            format!("the server's certificate is not valid for {host:?}"),
            format!(
                "connect by a name or address listed in the certificate's subjectAltName, or reissue the \
                 certificate for {host}"
            ),
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => (
            "the server's certificate is expired or not valid yet".to_string(),
            "renew the server's certificate (or check this machine's clock)".to_string(),
        ),
        rustls::Error::InvalidCertificate(_) => (
            format!("the server's certificate is not signed by {trusted}"),
            format!("set {ca_setting} to the CA certificate that signed the server's certificate"),
        ),
        other => (
            format!("the TLS handshake failed: {other}"),
            "check that the server speaks TLS on this port, and its certificate settings".to_string(),
        ),
    };
    Error::new(ErrorKind::Refused, op, target, format!("{why} ({tls})")).with_hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_names_the_setting() {
        let e = load_roots("t", "ssl_root_cert", Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("ssl_root_cert"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load_roots("t", "patroni_ca_file", &empty).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("patroni_ca_file: no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_issuer_names_the_ca_setting_and_a_wrong_name_the_host() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let e = handshake_error(
            "op",
            "t",
            "db1",
            &unknown,
            "ca_file",
            Some(Path::new("/etc/ca.pem")),
        );
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(!e.is_retryable());
        assert!(
            e.to_string()
                .contains("not signed by the CA in ca_file (/etc/ca.pem)"),
            "{e}"
        );
        assert!(e.hint().unwrap_or("").contains("set ca_file"), "{e}");
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        let e = handshake_error("op", "t", "db1", &name, "ca_file", None);
        assert!(e.to_string().contains("not valid for \"db1\""), "{e}");
        // As hyper-rustls reports it: rustls' error in an io::Error in another.
        let wrapped = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, unknown));
        assert!(find_tls_error(&wrapped).is_some());
    }
}
