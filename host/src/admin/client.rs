//! The CLI's side of the admin API (`hubwasm plugin swap`): one HTTP/1.1 request per
//! connection, with bounded reads and a timeout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most of an answer read (status and JSON bodies are small).
const MAX_RESPONSE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("admin address `{0}` is not HOST:PORT (e.g. 127.0.0.1:9466)")]
    BadAddress(String),
    #[error("cannot reach the admin API at {addr}: {source}; is the host running with --admin?")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the admin API at {addr} did not answer within {0:?}", timeout)]
    Timeout { addr: String, timeout: Duration },
    #[error("the admin API at {addr} answered with something that is not HTTP")]
    Garbled { addr: String },
}

/// An answer: the status code and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Send `method path` with an optional JSON body and bearer token to `addr` (`host:port`,
/// optionally with an `http://` prefix).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Answer, ClientError> {
    let body = body.unwrap_or("");
    let content_type = (!body.is_empty()).then_some("application/json");
    send(
        addr,
        method,
        path,
        body.as_bytes(),
        content_type,
        token,
        timeout,
    )
    .await
}

/// Send `method path` with `body` of `content_type` (none for an empty body).
pub async fn send(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    content_type: Option<&str>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Answer, ClientError> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    if addr.is_empty() || !addr.contains(':') || addr.contains('/') {
        return Err(ClientError::BadAddress(addr.to_string()));
    }
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        let io = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(body).await.map_err(io)?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .await
            .map_err(io)?;
        parse(&raw).ok_or_else(|| ClientError::Garbled {
            addr: addr.to_string(),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ClientError::Timeout {
            addr: addr.to_string(),
            timeout,
        })?
}

fn parse(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some(Answer { status, body })
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// A `multipart/form-data` body of `parts` (name, file name, bytes) and its content type.
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> (Vec<u8>, String) {
    // A boundary that cannot occur in the parts.
    let mut boundary = String::from("hubwasm-part");
    let mut n = 0u64;
    while parts
        .iter()
        .any(|(_, _, b)| b.windows(boundary.len()).any(|w| w == boundary.as_bytes()))
    {
        n += 1;
        boundary = format!("hubwasm-part-{n:x}");
    }
    let mut out = Vec::new();
    for (name, file_name, bytes) in parts {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (out, format!("multipart/form-data; boundary={boundary}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_plain_and_chunked_and_garbage_is_refused() {
        let a = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n").unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
        let a = parse(
            b"HTTP/1.1 422 X\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((a.status, a.body.as_str()), (422, "abcde"));
        assert!(parse(b"SSH-2.0-OpenSSH\r\n").is_none());
        assert!(parse(b"HTTP/1.1 2").is_none());
        assert!(parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n").is_none());
    }
}
