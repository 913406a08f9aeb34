//! bollard's errors as `connect_core::Error`, with the container or image named and a fix where one is known.

use bollard::errors::Error as BollardError;
use connect_core::{Error, ErrorKind};

/// Converts a bollard error from `operation` on `target` (a container or image name).
pub(crate) fn map_err(operation: &str, target: &str, e: BollardError) -> Error {
    let (kind, message, hint): (ErrorKind, String, Option<&str>) = match &e {
        BollardError::DockerResponseServerError { status_code, message } => {
            let lower = message.to_ascii_lowercase();
            match status_code {
                404 => (ErrorKind::NotFound, message.clone(), None),
                409 => (
                    ErrorKind::Conflict,
                    message.clone(),
                    Some("remove or rename the container that holds the name, or adopt it"),
                ),
                400 => (ErrorKind::InvalidInput, message.clone(), None),
                401 | 403 => (ErrorKind::PermissionDenied, message.clone(), None),
                _ if lower.contains("port is already allocated")
                    || lower.contains("address already in use") =>
                {
                    (
                        ErrorKind::Conflict,
                        message.clone(),
                        Some("another process or container holds the host port; free it or pick another"),
                    )
                }
                _ => (ErrorKind::Failed, format!("HTTP {status_code}: {message}"), None),
            }
        }
        BollardError::DockerStreamError { error } => (ErrorKind::Failed, error.clone(), None),
        BollardError::RequestTimeoutError => (
            ErrorKind::Timeout,
            "the Docker Engine did not answer in time".into(),
            None,
        ),
        BollardError::SocketNotFoundError(path) => (
            ErrorKind::Unavailable,
            format!("no Docker socket at {path}"),
            Some("start the Docker daemon (systemctl start docker) or point DOCKER_HOST at it"),
        ),
        BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. }
        | BollardError::HyperResponseError { .. } => (
            ErrorKind::Unavailable,
            format!("cannot talk to the Docker Engine: {}", chain(&e)),
            Some(
                "is the Docker daemon running and its socket reachable (systemctl status docker, DOCKER_HOST), \
                 and, when it is reached through SSH, is the connection to the server up?",
            ),
        ),
        _ => (ErrorKind::Failed, e.to_string(), None),
    };
    let mut err = Error::new(kind, operation, target, message);
    if let Some(h) = hint {
        err = err.with_hint(h);
    }
    err.with_source(e)
}

/// The error's message with its causes, because hyper's top-level message ("client error (Connect)") hides
/// the useful part.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Whether a bollard error is the Engine's 404.
pub(crate) fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError { status_code: 404, .. }
    )
}

/// Whether a bollard error is the Engine's 304 (already started / already stopped).
pub(crate) fn is_not_modified(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError { status_code: 304, .. }
    )
}
