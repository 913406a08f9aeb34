//! Test certificates made with Debian's openssl CLI: a CA, a server certificate it signed for 127.0.0.1
//! only (so a connection by the name `localhost` meets a certificate for another host), and a second CA that
//! signed nothing the servers use.

use std::path::{Path, PathBuf};
use std::process::Command;

use connect_core::testing::require_program;
use connect_core::{Error, ErrorKind, Result};

use super::process::io;

/// The certificate files, PEM. The key is mode 600, as PostgreSQL requires of its `ssl_key_file`.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing here: a client trusting only it must refuse the servers.
    pub other_ca: PathBuf,
    /// The server's certificate, for 127.0.0.1 (subjectAltName `IP:127.0.0.1`, no DNS name).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
}

impl TestCerts {
    /// Makes the files in `dir` (P-256 keys, valid two days). `None` after a loud SKIP when openssl is
    /// missing and real tests are not required.
    pub fn generate(test: &str, dir: &Path) -> Option<TestCerts> {
        let openssl = require_program(test, "openssl", &["/usr/bin/openssl"])?;
        Some(
            Self::try_generate(&openssl, dir)
                .unwrap_or_else(|e| panic!("{test}: making test certificates: {e}")),
        )
    }

    fn try_generate(openssl: &Path, dir: &Path) -> Result<TestCerts> {
        std::fs::create_dir_all(dir).map_err(|e| io("testing.certs", dir, e))?;
        let path = |name: &str| dir.join(name);
        let certs = TestCerts {
            ca: path("ca.pem"),
            other_ca: path("other-ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
        };
        for (name, cert) in [
            ("connect-test-ca", &certs.ca),
            ("connect-other-ca", &certs.other_ca),
        ] {
            let key = cert.with_extension("key");
            run(
                openssl,
                Command::new(openssl)
                    .args([
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                    ])
                    .args(["-days", "2", "-subj", &format!("/CN={name}")])
                    .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                    .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                    .arg("-keyout")
                    .arg(&key)
                    .arg("-out")
                    .arg(cert),
            )?;
        }
        let csr = path("server.csr");
        run(
            openssl,
            Command::new(openssl)
                .args([
                    "req",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                ])
                .args(["-subj", "/CN=127.0.0.1"])
                .arg("-keyout")
                .arg(&certs.server_key)
                .arg("-out")
                .arg(&csr),
        )?;
        let ext = path("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| io("testing.certs", &ext, e))?;
        run(
            openssl,
            Command::new(openssl)
                .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&certs.ca)
                .arg("-CAkey")
                .arg(certs.ca.with_extension("key"))
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&certs.server_cert),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&certs.server_key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("testing.certs", &certs.server_key, e))?;
        Ok(certs)
    }
}

fn run(openssl: &Path, command: &mut Command) -> Result<()> {
    let out = command.output().map_err(|e| io("testing.certs", openssl, e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Failed,
        "testing.certs",
        openssl.display().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}
