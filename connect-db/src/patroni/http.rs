//! One request to a Patroni node, directly (reqwest) or through a host, and how its failures read.

use connect_core::{Error, ErrorKind, Result};
use serde_json::Value;

use std::path::Path;
use std::time::Duration;

use super::access::CA_SETTING;
use super::{BasicAuth, Patroni};

/// The most of a reply body read into memory: Patroni's largest answers (`/cluster` of a big cluster, a long
/// `/history`) are kilobytes; anything near this is not Patroni, and is refused rather than buffered.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;

/// The refusal of a body larger than [`MAX_BODY`].
pub(crate) fn too_large(op: &str, url: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        op,
        url,
        format!(
            "the answer is larger than {} MiB: refused, not read",
            MAX_BODY >> 20
        ),
    )
    .with_hint("is this address Patroni's REST API (restapi.listen)?")
}

impl Patroni {
    /// One request, directly or through the host, answered within `timeout`: the status and the body (at
    /// most [`MAX_BODY`]). Not answering at all is [`ErrorKind::Unavailable`] (retryable) or
    /// [`ErrorKind::Timeout`].
    pub(super) async fn send(
        &self,
        op: &str,
        method: &str,
        url: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>)> {
        let body = body.map(Value::to_string);
        let authorization = self.auth.as_ref().map(BasicAuth::header);
        if let Some(host) = &self.via {
            let request = crate::via_host::HttpRequest {
                op,
                method,
                url,
                body,
                authorization: authorization.as_deref(),
                tls: &self.tls.config,
                ca_file: self.tls.ca_file.as_deref(),
            };
            let reply = crate::via_host::http_request(host.as_ref(), request, timeout, MAX_BODY).await?;
            return Ok((reply.status, reply.body));
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| Error::invalid(op, url, e.to_string()).with_source(e))?;
        // The timeout covers connecting, sending and reading the whole body.
        let mut request = self.http.request(method, url).timeout(timeout);
        if let Some(b) = body {
            request = request.header("content-type", "application/json").body(b);
        }
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let ca = self.tls.ca_file.as_deref();
        let mut resp = request.send().await.map_err(|e| transport(op, url, ca, e))?;
        let status = resp.status().as_u16();
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large(op, url));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport(op, url, ca, e))? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(too_large(op, url));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }
}

/// Patroni's "no": 412 (precondition: wrong leader, bad candidate), 503 (it could not do it now), 400 (the
/// request makes no sense, e.g. no leader to switch from), each with Patroni's own sentence.
pub(super) fn refusal(op: &str, target: &str, status: u16, text: &str) -> Error {
    let text = text.trim();
    let (kind, hint) = match status {
        412 => (
            ErrorKind::Refused,
            "check the leader and candidate names against `patronictl list`",
        ),
        503 => (
            ErrorKind::Unavailable,
            "Patroni could not do it now; check its log and the members' state",
        ),
        400 => (
            ErrorKind::Refused,
            "the cluster is not in a state that allows it (is there a leader?)",
        ),
        401 | 403 => (
            ErrorKind::PermissionDenied,
            "Patroni refused the credentials: give restapi.authentication's username and password \
             (patroni_username / patroni_password in connect.toml, Patroni::with_auth)",
        ),
        404 => (
            ErrorKind::NotFound,
            "is this Patroni's REST API, and a version that has this endpoint?",
        ),
        _ => (ErrorKind::Failed, "see Patroni's log"),
    };
    Error::new(kind, op, target, format!("Patroni answered {status}: {text}")).with_hint(hint)
}

pub(super) fn transport(op: &str, url: &str, ca: Option<&Path>, e: reqwest::Error) -> Error {
    if let Some(tls) = crate::tls::find_tls_error(&e) {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        return crate::tls::handshake_error(op, url, &host, tls, CA_SETTING, ca);
    }
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    Error::new(kind, op, url, format!("Patroni did not answer: {e}"))
        .with_hint("is Patroni running and restapi.listen reachable from here?")
        .with_retryable(true)
        .with_source(e)
}

pub(super) fn unreachable_all(op: &str, nodes: &[String], last: Option<Error>) -> Error {
    let why = last.map(|e| e.message().to_string()).unwrap_or_default();
    Error::new(
        ErrorKind::Unavailable,
        op,
        nodes.join(","),
        format!("no Patroni node answered; last: {why}"),
    )
    .with_hint("is Patroni running and restapi.listen reachable from here?")
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_patrons_message() {
        let e = refusal(
            "patroni.switchover",
            "node1",
            412,
            "candidate name does not match\n",
        );
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(e.message().contains("412: candidate name does not match"));
        assert_eq!(refusal("x", "y", 503, "").kind(), ErrorKind::Unavailable);
    }
}
