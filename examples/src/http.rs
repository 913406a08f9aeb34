//! The little HTTP/1.1 both the demo app and the load generator speak: request and response heads,
//! `Content-Length` bodies, keep-alive, and (client side only) chunked bodies, which a proxy may produce.
//!
//! Hand-written rather than hyper because the load generator must tell apart "the server closed an idle
//! connection" from "a request got no answer", which needs the socket in hand, and because the demo app ships
//! as a `FROM scratch` image where every dependency is bytes to transfer.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Longest request or response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// A request as the demo app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`…
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query string after `?`, if any.
    pub query: Option<String>,
    /// Whether the client asked to keep the connection open (HTTP/1.1 default).
    pub keep_alive: bool,
    /// The body (`Content-Length` only).
    pub body: Vec<u8>,
}

/// A response as the load generator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Whether the server will close the connection after this response.
    pub close: bool,
    /// The decoded body.
    pub body: Vec<u8>,
}

/// Why reading a message failed.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection before sending a single byte of the message.
    ClosedBeforeMessage,
    /// The peer closed the connection in the middle of the message.
    Truncated,
    /// The bytes are not HTTP/1.x as we understand it.
    Malformed(String),
    /// The socket failed (reset, refused…).
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::ClosedBeforeMessage => f.write_str("connection closed before the message"),
            ReadError::Truncated => f.write_str("connection closed in the middle of the message"),
            ReadError::Malformed(why) => write!(f, "malformed HTTP: {why}"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Truncated
        } else {
            ReadError::Io(e)
        }
    }
}

/// Reads one head (start line and headers, up to the empty line). `Ok(None)` on a clean close before any byte.
async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Vec<String>>, ReadError> {
    let mut lines = Vec::new();
    let mut total = 0usize;
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return if lines.is_empty() && total == 0 {
                Ok(None)
            } else {
                Err(ReadError::Truncated)
            };
        }
        total += n;
        if total > MAX_HEAD {
            return Err(ReadError::Malformed(format!("head longer than {MAX_HEAD} bytes")));
        }
        if !line.ends_with(b"\n") {
            return Err(ReadError::Truncated);
        }
        let text = String::from_utf8(line).map_err(|_| ReadError::Malformed("head is not UTF-8".into()))?;
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            // RFC 9112 2.2: ignore empty lines before the start line.
            if lines.is_empty() {
                continue;
            }
            return Ok(Some(lines));
        }
        lines.push(text.to_string());
    }
}

struct Headers {
    content_length: Option<usize>,
    chunked: bool,
    connection_close: bool,
    connection_keep_alive: bool,
}

fn parse_headers(lines: &[String]) -> Result<Headers, ReadError> {
    let mut h = Headers {
        content_length: None,
        chunked: false,
        connection_close: false,
        connection_keep_alive: false,
    };
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ReadError::Malformed(format!("header without a colon: {line:?}")))?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| ReadError::Malformed(format!("Content-Length {value:?}")))?;
                if n > MAX_BODY {
                    return Err(ReadError::Malformed(format!("body of {n} bytes is too large")));
                }
                h.content_length = Some(n);
            }
            "transfer-encoding" => h.chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                for token in value.split(',').map(|t| t.trim().to_ascii_lowercase()) {
                    h.connection_close |= token == "close";
                    h.connection_keep_alive |= token == "keep-alive";
                }
            }
            _ => {}
        }
    }
    Ok(h)
}

/// Reads one request. `Ok(None)` when the client closed the connection cleanly between requests.
/// Chunked request bodies are refused as malformed: no client of the demo app sends them.
pub async fn read_request<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Request>, ReadError> {
    let Some(lines) = read_head(r).await? else {
        return Ok(None);
    };
    let mut start = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (start.next(), start.next(), start.next(), start.next())
    else {
        return Err(ReadError::Malformed(format!("request line {:?}", lines[0])));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        other => return Err(ReadError::Malformed(format!("version {other:?}"))),
    };
    let h = parse_headers(&lines[1..])?;
    if h.chunked {
        return Err(ReadError::Malformed(
            "chunked request bodies are not supported".into(),
        ));
    }
    let mut body = vec![0; h.content_length.unwrap_or(0)];
    r.read_exact(&mut body).await?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    Ok(Some(Request {
        method: method.to_string(),
        path,
        query,
        keep_alive: if http11 {
            !h.connection_close
        } else {
            h.connection_keep_alive
        },
        body,
    }))
}

/// Reads one response to a request that was not `HEAD`.
pub async fn read_response<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Response, ReadError> {
    let Some(lines) = read_head(r).await? else {
        return Err(ReadError::ClosedBeforeMessage);
    };
    let mut start = lines[0].splitn(3, ' ');
    let (Some(version), Some(code)) = (start.next(), start.next()) else {
        return Err(ReadError::Malformed(format!("status line {:?}", lines[0])));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        other => return Err(ReadError::Malformed(format!("version {other:?}"))),
    };
    let status: u16 = code
        .parse()
        .map_err(|_| ReadError::Malformed(format!("status {code:?}")))?;
    let h = parse_headers(&lines[1..])?;
    let mut close = if http11 {
        h.connection_close
    } else {
        !h.connection_keep_alive
    };
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if h.chunked {
        read_chunked(r).await?
    } else if let Some(n) = h.content_length {
        let mut body = vec![0; n];
        r.read_exact(&mut body).await?;
        body
    } else {
        // No length: the body ends when the connection does, so it cannot be reused.
        close = true;
        let mut body = Vec::new();
        r.take(MAX_BODY as u64).read_to_end(&mut body).await?;
        body
    };
    Ok(Response { status, close, body })
}

async fn read_chunked<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(ReadError::Truncated);
        }
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| ReadError::Malformed(format!("chunk size {size:?}")))?;
        if body.len() + size > MAX_BODY {
            return Err(ReadError::Malformed("chunked body too large".into()));
        }
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t).await? == 0 {
                    return Err(ReadError::Truncated);
                }
                if t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let at = body.len();
        body.resize(at + size, 0);
        r.read_exact(&mut body[at..]).await?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).await?;
    }
}

/// Serialises a response with a `Content-Length` body.
pub fn response_bytes(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    };
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn req(bytes: &[u8]) -> Result<Option<Request>, ReadError> {
        let mut r = tokio::io::BufReader::new(bytes);
        read_request(&mut r).await
    }

    async fn resp(bytes: &[u8]) -> Result<Response, ReadError> {
        let mut r = tokio::io::BufReader::new(bytes);
        read_response(&mut r).await
    }

    #[tokio::test]
    async fn requests_parse_with_keep_alive_rules() {
        let r = req(b"POST /admin/mode?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nslow")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/admin/mode"));
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.body, b"slow");
        assert!(r.keep_alive);
        let r = req(b"GET / HTTP/1.0\r\n\r\n").await.unwrap().unwrap();
        assert!(!r.keep_alive);
        let r = req(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap()
            .unwrap();
        assert!(!r.keep_alive);
        assert!(req(b"").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bad_requests_are_errors_not_panics() {
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/2\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
        ] {
            assert!(req(bad).await.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test]
    async fn responses_parse_lengths_chunks_and_close() {
        let r = resp(&response_bytes(503, "text/plain", b"down", true))
            .await
            .unwrap();
        assert_eq!((r.status, r.close, r.body.as_slice()), (503, false, &b"down"[..]));
        let r =
            resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n")
                .await
                .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = resp(b"HTTP/1.0 200 OK\r\n\r\nuntil close").await.unwrap();
        assert!(r.close);
        assert_eq!(r.body, b"until close");
        assert!(matches!(resp(b"").await, Err(ReadError::ClosedBeforeMessage)));
        assert!(matches!(
            resp(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").await,
            Err(ReadError::Truncated)
        ));
        assert!(matches!(
            resp(b"HTTP/1.1 200 OK\r\nCont").await,
            Err(ReadError::Truncated)
        ));
    }
}
