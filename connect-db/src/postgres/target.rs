//! Where and as whom to connect: [`PgTarget`].

use std::fmt;
use std::time::Duration;

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
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
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
        }
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
            .connect_timeout(self.connect_timeout);
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }
}
