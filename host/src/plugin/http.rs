//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`): refused unless the request's origin
//! is one the operator allowed for the plugin (`allowed_outbound_hosts`, as Spin names it), and
//! never waiting longer than the plugin's call timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// One allowed origin: `scheme://host[:port]` (the scheme's default port when none is given).
/// In a config it is parsed when the file is loaded: a bad one is refused with its line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl TryFrom<String> for Origin {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl Origin {
    /// Parse `http://host[:port]` or `https://host[:port]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("`{text}`: {why}; write an origin such as `https://api.example.com` or `http://127.0.0.1:8080`")
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', '*', ' ']) {
            return Err(bad(
                "only scheme, host and port are allowed (no path, user or wildcard)",
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("the port must be a number up to 65535"))?,
            ),
            _ => (rest, default_port),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self {
            scheme: scheme.to_string(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let default_port = if scheme == "http" { 80 } else { 443 };
        scheme == self.scheme
            && uri
                .host()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && uri.port_u16().unwrap_or(default_port) == self.port
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = match self.scheme.as_str() {
            "http" => 80,
            _ => 443,
        };
        if self.port == default {
            write!(f, "{}://{}", self.scheme, self.host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// The outbound HTTP a plugin may do.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub plugin: Arc<str>,
    pub allowed: Arc<[Origin]>,
    /// Connecting and each wait for response bytes are cut at this (the plugin's call timeout;
    /// the call itself is also cut there).
    pub timeout: Duration,
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let uri = request.uri().clone();
        if !self.allowed.iter().any(|o| o.matches(&uri)) {
            let origin = format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("https"),
                uri.authority().map(|a| a.as_str()).unwrap_or("")
            );
            tracing::warn!(
                plugin = &*self.plugin,
                %origin,
                allowed = ?self.allowed.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
                "Outbound HTTP refused (HTTP-request-denied): the origin is not in the plugin's \
                 allowed_outbound_hosts (add it there, and to the tenant's grants, to allow it)"
            );
            // Answer only after the guest has sent the body (read and dropped, bounded by the
            // call timeout): a guest still streaming it would otherwise see its body stream
            // break before it sees the denial, which componentize-js's `fetch` cannot report.
            let timeout = self.timeout;
            return Box::new(async move {
                use http_body_util::BodyExt;
                let mut body = request.into_body();
                let _ = tokio::time::timeout(timeout, async {
                    while let Some(Ok(_)) = body.frame().await {}
                })
                .await;
                Err(HttpError::HttpRequestDenied)
            });
        }
        let cap = |d: Option<Duration>| Some(d.map_or(self.timeout, |d| d.min(self.timeout)));
        let options = RequestOptions {
            connect_timeout: cap(options.and_then(|o| o.connect_timeout)),
            first_byte_timeout: cap(options.and_then(|o| o.first_byte_timeout)),
            between_bytes_timeout: cap(options.and_then(|o| o.between_bytes_timeout)),
        };
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_match_scheme_host_and_port() {
        let o = Origin::parse("http://127.0.0.1:8080").unwrap();
        assert!(o.matches(&"http://127.0.0.1:8080/x?y".parse().unwrap()));
        assert!(!o.matches(&"http://127.0.0.1:8081/".parse().unwrap()));
        assert!(!o.matches(&"https://127.0.0.1:8080/".parse().unwrap()));
        let o = Origin::parse("https://API.example.com").unwrap();
        assert_eq!(o.port, 443);
        assert!(o.matches(&"https://api.example.com/v1".parse().unwrap()));
        assert!(!o.matches(&"https://evil.example.com/".parse().unwrap()));
        for bad in [
            "ftp://x",
            "example.com",
            "https://",
            "https://a/b",
            "https://*.x",
            "http://a:99999",
        ] {
            let err = Origin::parse(bad).unwrap_err();
            assert!(err.contains(bad) && err.contains("origin such as"), "{err}");
        }
    }
}
