//! PostgreSQL's failures sorted into kinds a caller acts on, and identifier quoting.

use connect_core::{Error, ErrorKind};
use tokio_postgres::error::SqlState;

use super::PgTarget;

/// Sorts PostgreSQL's failures into kinds a caller acts on, keeping the server's own message.
pub(crate) fn pg_error(op: &str, target: &PgTarget, e: tokio_postgres::Error) -> Error {
    let target_s = target.to_string();
    let Some(db) = e.as_db_error() else {
        if let Some(tls) = super::tls_failure(op, target, &e) {
            return tls.with_source(e);
        }
        let msg = format!("{e}: {}", source_text(&e));
        // tokio-postgres reports its own connect timeout as an io::Error of kind TimedOut.
        let kind = if io_kind(&e) == Some(std::io::ErrorKind::TimedOut) {
            ErrorKind::Timeout
        } else {
            ErrorKind::Unavailable
        };
        return Error::new(kind, op, target_s, msg)
            .with_hint("is PostgreSQL running and listening on that address?")
            .with_retryable(true)
            .with_source(e);
    };
    let code = db.code().clone();
    let msg = format!("{} ({}): {}", db.severity(), code.code(), db.message());
    // Told apart by SQLSTATE, not by the (translatable) message: 57014 is statement_timeout (or a cancel),
    // 55P03 is lock_timeout.
    if code == SqlState::QUERY_CANCELED || code == SqlState::LOCK_NOT_AVAILABLE {
        let what = if code == SqlState::LOCK_NOT_AVAILABLE {
            "a lock held by another session (a migration?) was not released within lock_timeout"
        } else {
            "the statement ran longer than statement_timeout"
        };
        return Error::new(ErrorKind::Timeout, op, target_s, msg)
            .with_hint(format!("{what}; retry later, or raise the PgTarget's bound"))
            .with_retryable(true)
            .with_source(e);
    }
    let (kind, hint) =
        if code == SqlState::INVALID_PASSWORD || code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            (
                ErrorKind::PermissionDenied,
                Some("check the user and password (and pg_hba.conf)"),
            )
        } else if code == SqlState::INSUFFICIENT_PRIVILEGE {
            (
                ErrorKind::PermissionDenied,
                Some("this needs a role with more privileges"),
            )
        } else if code == SqlState::INVALID_CATALOG_NAME || code == SqlState::UNDEFINED_TABLE {
            (ErrorKind::NotFound, None)
        } else if code == SqlState::CANNOT_CONNECT_NOW || code == SqlState::ADMIN_SHUTDOWN {
            (
                ErrorKind::Unavailable,
                Some("the server is starting or stopping; retry"),
            )
        } else if code == SqlState::READ_ONLY_SQL_TRANSACTION
            || code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
        {
            (ErrorKind::Refused, Some("this must run on the leader"))
        } else if code == SqlState::OBJECT_IN_USE {
            (ErrorKind::Conflict, None)
        } else if code.code().starts_with("42") || code.code().starts_with("22") {
            (ErrorKind::InvalidInput, None)
        } else {
            (ErrorKind::Failed, None)
        };
    let err = Error::new(kind, op, target_s, msg).with_source(e);
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

fn io_kind(e: &tokio_postgres::Error) -> Option<std::io::ErrorKind> {
    use std::error::Error as _;
    e.source()?
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
}

fn source_text(e: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
    e.source().map(|s| s.to_string()).unwrap_or_default()
}

/// Quotes an SQL identifier (`"my db"`).
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
