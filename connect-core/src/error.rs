//! The one error type of Connect Ops.
//!
//! Every backend (SSH, Docker, HAProxy, Patroni, Redis, the in-memory ones) converts its own failures into
//! [`Error`], so a caller matches on [`ErrorKind`] to decide what to do, whichever backend failed.

use std::fmt;

/// What went wrong, in categories a caller can act on.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input is wrong (an invalid image reference, a zero timeout): fix the call, do not retry.
    InvalidInput,
    /// The named thing does not exist (a container, an image, a HAProxy server, a file).
    NotFound,
    /// The thing already exists or someone else holds it (a deploy lock, a container name).
    Conflict,
    /// The other side understood and said no (HAProxy rejected a command, Patroni answered 412).
    Refused,
    /// Authentication or permission failed (SSH key refused, socket not at admin level).
    PermissionDenied,
    /// The other side could not be reached or the connection broke; often worth a retry.
    Unavailable,
    /// A deadline passed before the condition held.
    Timeout,
    /// A service answered but is not healthy (container health, no database leader).
    Unhealthy,
    /// Stored data is damaged (a truncated journal, a corrupt dump).
    Corrupt,
    /// The recorded state and the observed state disagree (traffic switched by hand, a container gone).
    Drift,
    /// A command or step ran and failed (a migration exited 1).
    Failed,
    /// The backend cannot do this operation.
    Unsupported,
}

impl ErrorKind {
    /// Every kind, in declaration order: what a binding lists and parses (the Python `ERROR_KINDS`).
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Refused,
        ErrorKind::PermissionDenied,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Unhealthy,
        ErrorKind::Corrupt,
        ErrorKind::Drift,
        ErrorKind::Failed,
        ErrorKind::Unsupported,
    ];

    /// The kind's identifier as serde writes it (`invalid_input`): the Python `ConnectError.kind`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            // The other names are one word, the same as `as_str`.
            other => other.as_str(),
        }
    }

    /// The kind named `name` (see [`ErrorKind::name`]).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether trying the same operation again, unchanged, may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Timeout)
    }

    /// A stable lower-case name, used in messages, journals and the Python exception names.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Refused => "refused",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unhealthy => "unhealthy",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Drift => "drift",
            ErrorKind::Failed => "failed",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An error from any part of Connect Ops: its kind, the operation, the target, what happened and, where we
/// know it, how to fix it.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    operation: String,
    target: String,
    message: String,
    hint: Option<String>,
    retryable: Option<bool>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The result type of Connect Ops.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error: `operation` is what we were doing (`"router.set_state"`), `target` what we did it to
    /// (`"be_app/app2"`).
    pub fn new(
        kind: ErrorKind,
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error {
            kind,
            operation: operation.into(),
            target: target.into(),
            message: message.into(),
            hint: None,
            retryable: None,
            source: None,
        }
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error.
    pub fn invalid(
        operation: impl Into<String>,
        target: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::new(ErrorKind::InvalidInput, operation, target, message)
    }

    /// Adds how to fix it, shown after the message.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Says where it happened, before the message: `"jump host 1 of 2 (ops@bastion:22): <message>"`.
    pub fn in_context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Changes the category (when the caller knows better than the place the error was made).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Overrides whether the error is worth retrying (the kind decides by default).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
    }

    /// The category.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed, e.g. `"runtime.start"`.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// What the operation was applied to, e.g. a container or server name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What happened, in the backend's own words where it gave any.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error as displayed, without its hint: for an error that wraps this one and carries the hint once.
    pub fn summary(&self) -> String {
        let mut text = format!("{} {}", self.operation, self.kind);
        if !self.target.is_empty() {
            text.push_str(&format!(" ({})", self.target));
        }
        text.push_str(": ");
        text.push_str(&self.message);
        text
    }

    /// How to fix it, when known.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Whether the same operation, unchanged, may succeed on a later try.
    pub fn is_retryable(&self) -> bool {
        self.retryable.unwrap_or_else(|| self.kind.is_retryable())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary())?;
        if let Some(hint) = &self.hint {
            write!(f, "; fix: {hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_operation_target_and_fix() {
        let e = Error::new(
            ErrorKind::Conflict,
            "deploy.lock",
            "/opt/connect/state/deploy.lock",
            "held by ci",
        )
        .with_hint("wait, or break the lock");
        assert_eq!(
            e.to_string(),
            "deploy.lock conflict (/opt/connect/state/deploy.lock): held by ci; fix: wait, or break the lock"
        );
        assert!(!e.is_retryable());
        assert!(Error::new(ErrorKind::Timeout, "a", "b", "c").is_retryable());
        assert!(
            !Error::new(ErrorKind::Timeout, "a", "b", "c")
                .with_retryable(false)
                .is_retryable()
        );
    }

    #[test]
    fn all_lists_every_kind_once_under_its_serde_name() {
        // A match without a wildcard: adding a variant fails to compile here until it is listed in `ALL`.
        let position = |k: ErrorKind| match k {
            ErrorKind::InvalidInput => 0,
            ErrorKind::NotFound => 1,
            ErrorKind::Conflict => 2,
            ErrorKind::Refused => 3,
            ErrorKind::PermissionDenied => 4,
            ErrorKind::Unavailable => 5,
            ErrorKind::Timeout => 6,
            ErrorKind::Unhealthy => 7,
            ErrorKind::Corrupt => 8,
            ErrorKind::Drift => 9,
            ErrorKind::Failed => 10,
            ErrorKind::Unsupported => 11,
        };
        for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(position(kind), i, "{kind:?}");
            let serde = serde_json::to_value(kind).expect("a kind serializes");
            assert_eq!(serde.as_str(), Some(kind.name()));
            assert_eq!(ErrorKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("invalid input"), None);
    }
}
