//! Notifications: the record of every operation, as JSON, POSTed to the operator's webhooks once it is in
//! the journal (the runbook's "team notified"). A webhook is told, never asked: its failure, slowness or
//! answer never changes the operation's outcome, and each delivery is bounded by its own timeout.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Deployer;
use super::journal::OperationRecord;
use crate::error::{Error, Result};
use crate::vocabulary::Step;

/// An HTTP(S) endpoint that receives every operation's record.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// `https://chat.example/hooks/…`. Its path and query often hold a secret: messages show
    /// [`Webhook::shown`] instead.
    pub url: String,
    /// How long one delivery may take, connection included.
    #[serde(with = "crate::model::duration_ms")]
    pub timeout: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.shown())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Webhook {
    /// A webhook at `url` with a 10 s timeout.
    pub fn new(url: impl Into<String>) -> Webhook {
        Webhook {
            url: url.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// With another timeout.
    pub fn timeout(mut self, timeout: Duration) -> Webhook {
        self.timeout = timeout;
        self
    }

    /// The URL without its path, query or credentials (`https://chat.example/…`): chat services put their
    /// secret there, and messages and logs are read by more people than the config.
    pub fn shown(&self) -> String {
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return "<not a URL>".into();
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let more = if rest.len() > authority.len() { "/…" } else { "" };
        format!("{scheme}://{host}{more}")
    }

    /// Refuses what can never be delivered: not http(s), no host, a zero timeout.
    pub fn validate(&self) -> Result<()> {
        let scheme = self.url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let host_empty = self
            .url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#', '@']).next().unwrap_or_default())
            .is_none_or(str::is_empty);
        if !matches!(scheme.as_deref(), Some("http" | "https")) || host_empty {
            return Err(Error::invalid(
                "webhook.validate",
                self.shown(),
                "a webhook needs an http:// or https:// URL with a host",
            )
            .with_hint("e.g. url = \"https://chat.example/hooks/deploys\""));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid(
                "webhook.validate",
                self.shown(),
                "a timeout of zero can never be met",
            ));
        }
        Ok(())
    }
}

impl Deployer {
    /// Tells every webhook about `record`, one after the other, each within its timeout. A failure is a
    /// warning of the record step, nothing more: the operation already ended and is in the journal.
    pub(crate) async fn notify(&self, record: &OperationRecord) {
        for hook in &self.config.webhooks {
            let started = tokio::time::Instant::now();
            let delivered = tokio::time::timeout(hook.timeout, post(hook, record)).await;
            let failure = match delivered {
                Ok(Ok(status)) => {
                    tracing::info!(webhook = %hook.shown(), status, elapsed = ?started.elapsed(), "notified");
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", hook.timeout),
            };
            self.events.warn(
                Step::Record,
                format!(
                    "the webhook {} was not told of operation {}: {failure}; the operation's outcome stands",
                    hook.shown(),
                    record.id
                ),
            );
        }
    }
}

/// POSTs the record; an answer other than 2xx is an error naming the status.
#[cfg(feature = "webhook")]
async fn post(hook: &Webhook, record: &OperationRecord) -> Result<u16> {
    use crate::error::ErrorKind;

    let op = "webhook.post";
    let body = serde_json::to_vec(record).map_err(|e| {
        Error::new(
            ErrorKind::Failed,
            op,
            hook.shown(),
            format!("the record is not JSON: {e}"),
        )
        .with_source(e)
    })?;
    let response = client(hook)?
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("connect-ops/", env!("CARGO_PKG_VERSION")))
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let kind = if e.is_timeout() {
                ErrorKind::Timeout
            } else {
                ErrorKind::Unavailable
            };
            // reqwest's message names the URL, secret path included: only its kind of failure is kept.
            let why = if e.is_connect() {
                "could not connect"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "the request failed"
            };
            Error::new(kind, op, hook.shown(), why).with_source(e.without_url())
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::new(
            ErrorKind::Failed,
            op,
            hook.shown(),
            format!("answered {status}"),
        ));
    }
    Ok(status.as_u16())
}

/// A client with this crate's TLS (rustls on ring, the system's CAs) and the hook's timeout.
#[cfg(feature = "webhook")]
fn client(hook: &Webhook) -> Result<reqwest::Client> {
    use std::sync::Arc;

    use crate::error::ErrorKind;

    let failed = |e: String| Error::new(ErrorKind::Failed, "webhook.client", hook.shown(), e);
    // ring, as russh and connect-db build it: one crypto provider in the whole program.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| failed(e.to_string()))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(hook.timeout)
        .build()
        .map_err(|e| failed(e.to_string()))
}

#[cfg(not(feature = "webhook"))]
async fn post(hook: &Webhook, _record: &OperationRecord) -> Result<u16> {
    Err(Error::new(
        crate::error::ErrorKind::Unsupported,
        "webhook.post",
        hook.shown(),
        "connect-core was built without its `webhook` feature",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_hides_the_path_query_and_credentials() {
        let hook = Webhook::new("https://user:pw@chat.example:8443/hooks/T0/B1/secret?x=1");
        assert_eq!(hook.shown(), "https://chat.example:8443/…");
        assert_eq!(Webhook::new("http://127.0.0.1:9").shown(), "http://127.0.0.1:9");
        assert!(!format!("{hook:?}").contains("secret"));
    }

    #[test]
    fn validate_refuses_what_cannot_be_delivered() {
        for url in ["ftp://127.0.0.1/x", "127.0.0.1/x", "https:///x", ""] {
            let e = Webhook::new(url).validate().unwrap_err();
            assert!(e.to_string().contains("http:// or https://"), "{url}: {e}");
        }
        let e = Webhook::new("https://127.0.0.1/")
            .timeout(Duration::ZERO)
            .validate();
        assert!(e.unwrap_err().to_string().contains("zero"));
        Webhook::new("https://127.0.0.1/hook").validate().unwrap();
    }
}
