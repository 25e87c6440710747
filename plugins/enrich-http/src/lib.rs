//! enrich-http: POSTs each event's body to an HTTP endpoint through WASI 0.2's
//! `wasi:http/outgoing-handler`, and forwards the answer.
//!
//! For every event: the body goes to `url` (with the event's content type, if set). A 2xx answer
//! is logged (sequence number, status and the first 200 bytes of the response body) and, if
//! `output` is set, the response body is emitted to that output on behalf of the event, with the
//! response's content type and the event's partition key (so per-key order carries over). Any
//! other status, or a transport error, is a retryable failure naming the status or the WASI
//! error code (e.g. `HTTP-request-denied` when the host does not allow the origin) and the URL.
//!
//! The host refuses every request except to the origins the operator lists in
//! `allowed_outbound_hosts`, and cuts a request at the plugin's call timeout.
//!
//! Config: `url` (required: `http://` or `https://` URL to POST to), `output` (optional: the name
//! of an output configured for the event hub in `[[eventhub.output]]`).

use hubwasm_guest::{
    emit::{self, Outgoing},
    export_plugin, log, retry, Config, Event, EventError, PartitionContext, Plugin,
};
use std::io::{Read as _, Write as _};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

/// How much of a response body goes into a log record or an error message.
const PREVIEW: usize = 200;

struct EnrichHttp {
    url: String,
    target: Target,
    output: Option<String>,
}

/// Where requests go: `url` split into the parts `outgoing-request` takes.
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Target {
    /// Split an `http://` or `https://` URL; `None` if it is not one.
    fn parse(url: &str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        let rest = rest.split('#').next().unwrap_or_default(); // the fragment is not sent
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return None;
        }
        let path_with_query = match path.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_owned(),
        };
        Some(Self {
            scheme,
            authority: authority.to_owned(),
            path_with_query,
        })
    }

    /// A POST request to the target, with `content_type` if given. Creating one checks the URL
    /// the way the host will, so `init` uses it to refuse a bad `url` up front.
    fn request(&self, content_type: Option<&str>) -> Result<OutgoingRequest, String> {
        let headers = Fields::new();
        if let Some(content_type) = content_type {
            // A content type that is not a valid header value is left out, not fatal: the
            // endpoint still gets the body.
            let _ = headers.append("content-type", content_type.as_bytes());
        }
        let request = OutgoingRequest::new(headers);
        request
            .set_method(&Method::Post)
            .map_err(|()| "the method is refused")?;
        request
            .set_scheme(Some(&self.scheme))
            .map_err(|()| "the scheme is refused")?;
        request
            .set_authority(Some(&self.authority))
            .map_err(|()| format!("the host `{}` is invalid", self.authority))?;
        request
            .set_path_with_query(Some(&self.path_with_query))
            .map_err(|()| format!("the path `{}` is invalid", self.path_with_query))?;
        Ok(request)
    }
}

/// A 2xx-or-not answer.
struct Response {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl EnrichHttp {
    /// POST `body` and read the whole answer. `Err` is a transport failure, described.
    fn post(&self, body: &[u8], content_type: Option<&str>) -> Result<Response, String> {
        let request = self.target.request(content_type)?;
        let outgoing = request.body().map_err(|()| "the request body was taken")?;
        // Send first, then stream the body: the host reads it while connecting.
        let future = outgoing_handler::handle(request, None).map_err(|code| wit_name(&code))?;
        let written = write_body(outgoing, body);
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(wit_name(&code)),
            Some(Err(())) | None => return Err("the response was already taken".into()),
        };
        written?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .into_iter()
            .next()
            .and_then(|v| String::from_utf8(v).ok());
        let incoming = response
            .consume()
            .map_err(|()| "the response body was taken")?;
        let mut body = Vec::new();
        {
            // The stream must be dropped before its body.
            let mut stream = incoming
                .stream()
                .map_err(|()| "the response body stream was taken")?;
            stream
                .read_to_end(&mut body)
                .map_err(|e| format!("reading the response body failed: {e}"))?;
        }
        drop(incoming);
        Ok(Response {
            status,
            content_type,
            body,
        })
    }
}

/// Write the whole request body and finish it.
fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), String> {
    {
        let mut stream = outgoing
            .write()
            .map_err(|()| "the request body stream was taken")?;
        // `write_all` waits for the stream's budget (`check-write`) as it goes.
        stream
            .write_all(body)
            .and_then(|()| std::io::Write::flush(&mut stream))
            .map_err(|e| format!("writing the request body failed: {e}"))?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|code| wit_name(&code))
}

/// An `error-code` as the WIT spells it (`HTTP-request-denied`, `DNS-timeout`, ...) followed by
/// its payload, if any: what an operator finds in the wasi:http docs. Derived from the bindings'
/// `Debug` (`ErrorCode::HttpRequestDenied`) so every case is covered.
fn wit_name(code: &ErrorCode) -> String {
    let debug = format!("{code:?}");
    let debug = debug.strip_prefix("ErrorCode::").unwrap_or(&debug);
    let (name, payload) = debug.split_at(debug.find('(').unwrap_or(debug.len()));
    let mut out = String::with_capacity(debug.len() + 4);
    // Words start at each capital: `HttpRequestUriTooLong` -> Http, Request, Uri, Too, Long.
    let mut start = 0;
    let ends = name
        .char_indices()
        .skip(1)
        .filter(|(_, c)| c.is_ascii_uppercase());
    for end in ends.map(|(at, _)| at).chain([name.len()]) {
        let word = &name[start..end];
        if start > 0 {
            out.push('-');
        }
        match word {
            "Dns" | "Ip" | "Tls" | "Http" | "Uri" => out.push_str(&word.to_ascii_uppercase()),
            _ => out.push_str(&word.to_ascii_lowercase()),
        }
        start = end;
    }
    out.push_str(payload);
    out
}

/// The first [`PREVIEW`] bytes of `body` as text.
fn preview(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(PREVIEW)]).into_owned()
}

impl Plugin for EnrichHttp {
    fn init(config: Config) -> Result<Self, String> {
        const EXAMPLE: &str = "e.g. `https://enrich.example.com/v1/lookup`";
        let url = config
            .get("url")
            .filter(|u| !u.trim().is_empty())
            .ok_or(format!(
                "config `url` is required: set it to the http:// or https:// URL to POST each \
                 event to, {EXAMPLE}"
            ))?
            .trim()
            .to_owned();
        let target = Target::parse(&url).ok_or(format!(
            "config `url` = `{url}` is invalid: expected an http:// or https:// URL with a host, \
             {EXAMPLE}"
        ))?;
        target
            .request(None)
            .map_err(|e| format!("config `url` = `{url}` is invalid: {e}"))?;
        let output = config
            .get("output")
            .filter(|o| !o.trim().is_empty())
            .map(str::to_owned);
        Ok(Self {
            url,
            target,
            output,
        })
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let response = self
            .post(event.body(), event.content_type())
            .map_err(|e| retry(format!("POST {} failed: {e}", self.url)))?;
        if !(200..300).contains(&response.status) {
            return Err(retry(format!(
                "POST {} answered HTTP {}: {}",
                self.url,
                response.status,
                preview(&response.body)
            )));
        }
        let (seq, status) = (
            event.sequence_number().to_string(),
            response.status.to_string(),
        );
        log::log_with(
            log::Level::Info,
            "enrich-http response",
            &[
                ("seq", &seq),
                ("status", &status),
                ("body", &preview(&response.body)),
            ],
        );
        if let Some(output) = &self.output {
            let mut out = Outgoing::new(response.body);
            if let Some(content_type) = response.content_type {
                out = out.content_type(content_type);
            }
            if let Some(key) = event.partition_key() {
                out = out.partition_key(key);
            }
            emit::send(output, event, out)?;
        }
        Ok(())
    }
}

export_plugin!(EnrichHttp);
