//! Reaching the servers through a [`Host`]'s byte streams (one SSH connection for everything) instead of
//! opening TCP connections from this machine: HTTP/1.1 (and HTTPS, the TLS running here) for Patroni with
//! hyper's client connection, the PostgreSQL protocol (and its TLS) with tokio-postgres' `connect_raw`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use connect_core::host::{BoxStream, Endpoint, Host};
use connect_core::{Error, ErrorKind, Result};
use hyper::body::Body as _;

/// What an HTTP request through a host got back.
pub(crate) struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The whole body.
    pub body: Vec<u8>,
}

fn unavailable(op: &str, target: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        op,
        target,
        format!("Patroni did not answer: {why}"),
    )
    .with_hint("is Patroni running and restapi.listen reachable from the server?")
    .with_retryable(true)
}

/// Where an `http(s)://` URL goes, as the server sees it.
struct Target {
    endpoint: Endpoint,
    /// The `Host` header's value.
    authority: String,
    /// The host alone, for TLS's server name.
    host: String,
    /// Path and query.
    path: String,
    https: bool,
}

fn split_url(op: &str, url: &str) -> Result<Target> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Error::invalid(op, url, e.to_string()).with_source(e))?;
    let https = match parsed.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                op,
                url,
                format!("{other}: only http and https are carried through the host"),
            ));
        }
    };
    let host = parsed
        .host_str()
        .ok_or_else(|| Error::invalid(op, url, "no host in the URL"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let mut path = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path.push('?');
        path.push_str(q);
    }
    Ok(Target {
        endpoint: Endpoint::Tcp {
            host: host.clone(),
            port,
        },
        authority,
        host,
        path,
        https,
    })
}

/// One HTTP request to carry through a host.
pub(crate) struct HttpRequest<'a> {
    /// The operation, for errors.
    pub op: &'a str,
    /// `GET`, `POST`…
    pub method: &'a str,
    /// `http(s)://host:port/path` as the server sees it.
    pub url: &'a str,
    /// A JSON body.
    pub body: Option<String>,
    /// The `Authorization` header, when there are credentials.
    pub authorization: Option<&'a str>,
    /// How an `https` URL's certificate is checked: the TLS runs here, end to end through the host's
    /// stream, so the server sees only ciphertext on the way.
    pub tls: &'a Arc<rustls::ClientConfig>,
    /// The CA file behind `tls`, named in certificate errors.
    pub ca_file: Option<&'a Path>,
}

/// One HTTP/1.1 request on a fresh stream through `host` (TLS on top for `https`), the whole answer read
/// within `timeout`; a body larger than `max_body` is refused as soon as it is seen to be, not buffered.
pub(crate) async fn http_request(
    host: &dyn Host,
    request: HttpRequest<'_>,
    timeout: Duration,
    max_body: usize,
) -> Result<HttpReply> {
    let (op, url) = (request.op, request.url);
    let target = split_url(op, url)?;
    let exchange = async {
        // The server refusing to open the stream is the node not listening: Unavailable, as a refused TCP
        // connection is when direct, so callers move on to the next Patroni node.
        let stream = host.connect(&target.endpoint).await.map_err(|e| match e.kind() {
            ErrorKind::Refused => unavailable(op, url, e.summary()),
            _ => e,
        })?;
        if !target.https {
            return exchange(stream, &request, &target, max_body).await;
        }
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| Error::invalid(op, url, format!("not a TLS server name: {e}")).with_source(e))?;
        let tls = tokio_rustls::TlsConnector::from(request.tls.clone())
            .connect(name, stream)
            .await
            .map_err(|e| match crate::tls::find_tls_error(&e) {
                Some(tls) => crate::tls::handshake_error(
                    op,
                    url,
                    &target.host,
                    tls,
                    crate::patroni::CA_SETTING,
                    request.ca_file,
                ),
                None => unavailable(op, url, e),
            })?;
        exchange(tls, &request, &target, max_body).await
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        Error::new(
            ErrorKind::Timeout,
            op,
            url,
            format!("no answer within {timeout:?}"),
        )
        .with_hint("is Patroni stuck? check its log")
        .with_retryable(true)
    })?
}

/// The HTTP/1.1 exchange itself, on a plain or TLS stream.
async fn exchange<S>(
    stream: S,
    request: &HttpRequest<'_>,
    target: &Target,
    max_body: usize,
) -> Result<HttpReply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (op, url) = (request.op, request.url);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(op, url, e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "HTTP connection through the host ended");
        }
    });
    let mut builder = hyper::Request::builder()
        .method(request.method)
        .uri(&target.path)
        .header("host", &target.authority);
    if request.body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    if let Some(a) = request.authorization {
        builder = builder.header("authorization", a);
    }
    let built = builder
        .body(request.body.clone().unwrap_or_default())
        .map_err(|e| Error::invalid(op, url, e.to_string()).with_source(e))?;
    let response = sender
        .send_request(built)
        .await
        .map_err(|e| unavailable(op, url, e))?;
    let status = response.status().as_u16();
    let mut incoming = response.into_body();
    if incoming.size_hint().lower() > max_body as u64 {
        return Err(crate::patroni::too_large(op, url));
    }
    let mut bytes = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut incoming).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| unavailable(op, url, e))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > max_body {
                return Err(crate::patroni::too_large(op, url));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(HttpReply { status, body: bytes })
}

/// A byte stream to PostgreSQL at `host:port` as the server sees it, within `timeout`.
pub(crate) async fn pg_stream(via: &dyn Host, host: &str, port: u16, timeout: Duration) -> Result<BoxStream> {
    let endpoint = if host.starts_with('/') {
        Endpoint::Unix(format!("{host}/.s.PGSQL.{port}"))
    } else {
        Endpoint::Tcp {
            host: host.to_string(),
            port,
        }
    };
    tokio::time::timeout(timeout, via.connect(&endpoint))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                "postgres.connect",
                endpoint.to_string(),
                format!("no connection through {} within {timeout:?}", via.name()),
            )
            .with_retryable(true)
        })?
        .map_err(|e| e.with_hint("is PostgreSQL running and listening on that address on the server?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_endpoint_and_path() {
        let t = split_url("t", "http://127.0.0.1:8008/replica?lag=10").unwrap();
        assert_eq!(
            t.endpoint,
            Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 8008
            }
        );
        assert_eq!(t.authority, "127.0.0.1:8008");
        assert_eq!(t.path, "/replica?lag=10");
        assert!(!t.https);
        let t = split_url("t", "http://[::1]/cluster").unwrap();
        assert_eq!(
            t.endpoint,
            Endpoint::Tcp {
                host: "::1".into(),
                port: 80
            }
        );
        assert_eq!(t.path, "/cluster");
        let t = split_url("t", "https://db1.internal/cluster").unwrap();
        assert!(t.https);
        assert_eq!(
            (t.host.as_str(), t.authority.as_str()),
            ("db1.internal", "db1.internal:443")
        );
        assert!(matches!(
            split_url("t", "ftp://x:8008").map(|t| t.path),
            Err(e) if e.kind() == ErrorKind::Unsupported
        ));
    }
}
