//! Where and as whom to connect: [`PgTarget`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connect_core::{Error, Result};

use super::SslMode;
use crate::names::{check_host, check_pg_name, check_port, conninfo_value};

/// Where and as whom to connect. The password is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Host name or address (`127.0.0.1`), or a unix socket directory.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// Its password, when the server asks for one.
    pub password: Option<String>,
    /// The app's database.
    pub dbname: String,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one statement may run before the server cancels it (`statement_timeout`, SQLSTATE 57014);
    /// zero leaves the server's own setting. Set on every connection the SDK opens.
    pub statement_timeout: Duration,
    /// How long a statement may wait for a lock (`lock_timeout`, SQLSTATE 55P03), e.g. the check query behind
    /// a migration's `ACCESS EXCLUSIVE` lock; zero leaves the server's own setting. `pg_dump` gets it as
    /// `--lock-wait-timeout`.
    pub lock_timeout: Duration,
    /// libpq's `sslmode`, for the SDK's connections and the client programs alike (`disable` by default).
    pub ssl_mode: SslMode,
    /// The CA certificate(s), PEM, that signed the server's certificate, read on this machine by the SDK's
    /// own connections (they run here, even through a host).
    pub ssl_root_cert: Option<PathBuf>,
    /// The same CA file's path on the host that runs `pg_dump`/`pg_restore` (their `sslrootcert`); the
    /// path of [`PgTarget::ssl_root_cert`] when `None`.
    pub host_ssl_root_cert: Option<String>,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("host_ssl_root_cert", &self.host_ssl_root_cert)
            .finish()
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgresql://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }
}

impl PgTarget {
    /// `user` on `dbname` at 127.0.0.1:5432; change the address with [`PgTarget::at`].
    pub fn new(user: &str, dbname: &str) -> PgTarget {
        PgTarget {
            host: "127.0.0.1".into(),
            port: 5432,
            user: user.into(),
            password: None,
            dbname: dbname.into(),
            connect_timeout: Duration::from_secs(5),
            // Within the deploy's default call bound (10 s) for a lock wait, so a check query queued behind a
            // migration's lock fails as itself (55P03) rather than as an anonymous cut; statements get longer.
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            ssl_mode: SslMode::Disable,
            ssl_root_cert: None,
            host_ssl_root_cert: None,
        }
    }

    /// With libpq's `sslmode` (see [`SslMode`]).
    pub fn ssl_mode(mut self, mode: SslMode) -> PgTarget {
        self.ssl_mode = mode;
        self
    }

    /// With the CA certificate file (PEM) the server's certificate must be signed by, on this machine; the
    /// client programs on the host get the same path unless [`PgTarget::host_ssl_root_cert`] says otherwise.
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> PgTarget {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// With the CA file's path on the host that runs `pg_dump`/`pg_restore`, when it differs from this
    /// machine's.
    pub fn host_ssl_root_cert(mut self, path: &str) -> PgTarget {
        self.host_ssl_root_cert = Some(path.to_string());
        self
    }

    /// The root CA path the client programs on the host are given.
    fn host_root_cert(&self) -> Option<String> {
        self.host_ssl_root_cert
            .clone()
            .or_else(|| self.ssl_root_cert.as_deref().map(|p| p.display().to_string()))
    }

    /// With another `statement_timeout` (zero: the server's own).
    pub fn statement_timeout(mut self, timeout: Duration) -> PgTarget {
        self.statement_timeout = timeout;
        self
    }

    /// With another `lock_timeout` (zero: the server's own).
    pub fn lock_timeout(mut self, timeout: Duration) -> PgTarget {
        self.lock_timeout = timeout;
        self
    }

    /// Refuses what cannot be a login: a host that is not a host name, an address or a socket directory (a
    /// comma would make libpq try several hosts), port 0, an empty or NUL-carrying user or database name.
    pub fn validate(&self, op: &str) -> Result<()> {
        check_host(op, &self.host, true)?;
        check_port(op, &self.to_string(), self.port)?;
        check_pg_name(op, "user", &self.user)?;
        check_pg_name(op, "database name", &self.dbname)?;
        if self.ssl_mode.needs_root_cert() && self.ssl_root_cert.is_none() && !self.is_socket() {
            return Err(self.missing_root_cert(op));
        }
        if let Some(path) = self.host_root_cert()
            && (path.is_empty() || path.contains(['\0', '\n', '\r']))
        {
            return Err(Error::invalid(
                op,
                path,
                "the root CA path is empty or has NUL or a line break",
            ));
        }
        if self
            .ssl_root_cert
            .as_deref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(Error::invalid(op, self.to_string(), "ssl_root_cert is empty"));
        }
        if let Some(p) = &self.password
            && (p.contains('\0') || p.contains('\n') || p.contains('\r'))
        {
            return Err(
                Error::invalid(op, self.to_string(), "the password contains NUL or a line break")
                    .with_hint("PostgreSQL's client programs cannot be given such a password; change it"),
            );
        }
        Ok(())
    }

    /// The login as one libpq connection string for the client programs (`pg_dump -d …`), every value
    /// quoted: a database named `host=elsewhere` or `postgresql://…` is that name, never a second connection
    /// string that would redirect the connection and its password. No password: it travels apart.
    /// `sslmode` (and `sslrootcert`) are in it too, so the programs check the server as the SDK does, and
    /// win over any `PGSSLMODE`/`PGSSLROOTCERT` in the host's environment.
    pub(crate) fn conninfo(&self, dbname: &str) -> String {
        let secs = self.connect_timeout.as_secs_f64().ceil().max(2.0) as u64;
        let mut conninfo = format!(
            "host={} port={} user={} dbname={} connect_timeout={secs} application_name={} sslmode={}",
            conninfo_value(&self.host),
            self.port,
            conninfo_value(&self.user),
            conninfo_value(dbname),
            conninfo_value("connect-ops"),
            self.ssl_mode,
        );
        if let Some(root) = self
            .host_root_cert()
            .filter(|_| self.ssl_mode != SslMode::Disable)
        {
            conninfo.push_str(&format!(" sslrootcert={}", conninfo_value(&root)));
        }
        conninfo
    }

    /// The CA file the SDK's connections read, if any.
    pub fn root_cert(&self) -> Option<&Path> {
        self.ssl_root_cert.as_deref()
    }

    /// `-c statement_timeout=… -c lock_timeout=…` for the startup packet, in milliseconds.
    fn server_options(&self) -> Option<String> {
        let mut opts = Vec::new();
        for (name, d) in [
            ("statement_timeout", self.statement_timeout),
            ("lock_timeout", self.lock_timeout),
        ] {
            if !d.is_zero() {
                opts.push(format!("-c {name}={}", d.as_millis().max(1)));
            }
        }
        (!opts.is_empty()).then(|| opts.join(" "))
    }

    /// The same login at another address.
    pub fn at(mut self, host: &str, port: u16) -> PgTarget {
        self.host = host.into();
        self.port = port;
        self
    }

    /// With a password.
    pub fn password(mut self, password: &str) -> PgTarget {
        self.password = Some(password.into());
        self
    }

    /// The same login on another database of the same server.
    pub fn database(&self, dbname: &str) -> PgTarget {
        let mut t = self.clone();
        t.dbname = dbname.into();
        t
    }

    pub(crate) fn config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("connect-ops")
            .connect_timeout(self.connect_timeout)
            .ssl_mode(self.driver_ssl_mode());
        if let Some(o) = self.server_options() {
            c.options(&o);
        }
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conninfo_quotes_every_value() {
        let t = PgTarget::new("o'brien", "host=evil.example dbname=x").at("/run/postgresql", 5432);
        assert_eq!(
            t.conninfo(&t.dbname),
            "host='/run/postgresql' port=5432 user='o\\'brien' dbname='host=evil.example dbname=x' \
             connect_timeout=5 application_name='connect-ops' sslmode=disable"
        );
        let tls = PgTarget::new("u", "d")
            .ssl_mode(SslMode::VerifyFull)
            .ssl_root_cert("/home/me/ca.pem")
            .host_ssl_root_cert("/etc/connect/pg ca.pem");
        assert!(
            tls.conninfo("d")
                .ends_with(" sslmode=verify-full sslrootcert='/etc/connect/pg ca.pem'"),
            "{}",
            tls.conninfo("d")
        );
        let local = PgTarget::new("u", "d")
            .ssl_mode(SslMode::Require)
            .ssl_root_cert("/ca.pem");
        assert!(
            local
                .conninfo("d")
                .ends_with(" sslmode=require sslrootcert='/ca.pem'")
        );
        assert!(!format!("{:?}", t.clone().password("s3cret")).contains("s3cret"));
    }

    #[test]
    fn timeouts_go_in_the_startup_options() {
        let t = PgTarget::new("u", "d");
        assert_eq!(
            t.server_options().as_deref(),
            Some("-c statement_timeout=30000 -c lock_timeout=5000")
        );
        let t = t
            .statement_timeout(Duration::ZERO)
            .lock_timeout(Duration::from_millis(250));
        assert_eq!(t.server_options().as_deref(), Some("-c lock_timeout=250"));
        assert_eq!(t.lock_timeout(Duration::ZERO).server_options(), None);
    }

    #[test]
    fn a_login_that_is_not_one_is_refused() {
        assert!(PgTarget::new("u", "d").validate("t").is_ok());
        assert!(PgTarget::new("u", "d").at("a,b", 5432).validate("t").is_err());
        assert!(PgTarget::new("u", "d").at("h", 0).validate("t").is_err());
        assert!(PgTarget::new("", "d").validate("t").is_err());
        assert!(PgTarget::new("u", "d\0").validate("t").is_err());
        assert!(PgTarget::new("u", "d").password("a\nb").validate("t").is_err());
    }
}
