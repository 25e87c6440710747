//! The body of a swap request, read as hostile: a component (`application/wasm`) or a
//! component and its replay events (`multipart/form-data`), each part streamed into a private
//! temporary file (created unlinked, so nothing else can open it) and never past its bound; an
//! upload that stalls or drags on is cut off. Only a complete, in-bound part is read back.

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::time::Instant;

/// The bounds an upload is read with.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub component: u64,
    pub replay: u64,
    /// The longest wait for the next bytes.
    pub idle: Duration,
    /// The longest a whole upload may take.
    pub total: Duration,
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "the {what} is larger than {limit} bytes, the most this host accepts ({setting}); \
         nothing was kept"
    )]
    TooLarge {
        what: &'static str,
        limit: u64,
        setting: &'static str,
    },
    #[error(
        "the upload sent nothing for {0:?} and was cut off; send the whole body without pausing"
    )]
    Stalled(Duration),
    #[error("the upload did not finish within {0:?} and was cut off")]
    TooSlow(Duration),
    #[error("the multipart body is malformed: {0}; send parts named `plugin` (the component) and, optionally, `replay` (.jsonl events)")]
    Malformed(String),
    #[error("the multipart body has no `plugin` part (the component's bytes)")]
    NoPlugin,
    #[error("the upload could not be kept in a temporary file: {0}")]
    Spool(String),
    #[error("the upload broke off: {0}")]
    Broken(String),
}

impl UploadError {
    pub fn status(&self) -> StatusCode {
        match self {
            UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::Stalled(_) | UploadError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            UploadError::Malformed(_) | UploadError::NoPlugin | UploadError::Broken(_) => {
                StatusCode::BAD_REQUEST
            }
            UploadError::Spool(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a swap request carried.
#[derive(Debug, Default)]
pub struct Uploaded {
    pub plugin: Vec<u8>,
    /// The component part's file name, if it gave one.
    pub file_name: Option<String>,
    pub replay: Option<Vec<u8>>,
}

/// The body's chunks, each awaited at most `idle` and all of them within `total`.
fn guarded<S, E>(
    stream: S,
    idle: Duration,
    total: Duration,
) -> impl Stream<Item = Result<Bytes, UploadError>> + Send + Unpin
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let deadline = Instant::now() + total;
    Box::pin(futures::stream::unfold(
        Some(Box::pin(stream)),
        move |state| async move {
            let mut stream = state?;
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(idle.min(left), stream.next()).await {
                Err(_) if left <= idle => Some((Err(UploadError::TooSlow(total)), None)),
                Err(_) => Some((Err(UploadError::Stalled(idle)), None)),
                Ok(None) => None,
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(stream))),
                Ok(Some(Err(e))) => Some((Err(UploadError::Broken(e.to_string())), None)),
            }
        },
    ))
}

/// A part kept in an unlinked temporary file until it is complete.
struct Spool {
    file: tokio::fs::File,
    len: u64,
    limit: u64,
    what: &'static str,
    setting: &'static str,
}

impl Spool {
    fn new(what: &'static str, limit: u64, setting: &'static str) -> Result<Self, UploadError> {
        let file = tempfile::tempfile().map_err(|e| UploadError::Spool(e.to_string()))?;
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            len: 0,
            limit,
            what,
            setting,
        })
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.len = self.len.saturating_add(chunk.len() as u64);
        if self.len > self.limit {
            return Err(UploadError::TooLarge {
                what: self.what,
                limit: self.limit,
                setting: self.setting,
            });
        }
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| UploadError::Spool(e.to_string()))
    }

    async fn read_back(mut self) -> Result<Vec<u8>, UploadError> {
        let spool = |e: std::io::Error| UploadError::Spool(e.to_string());
        self.file.flush().await.map_err(spool)?;
        self.file
            .seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(spool)?;
        let mut bytes = Vec::with_capacity(self.len as usize);
        (&mut self.file)
            .take(self.limit)
            .read_to_end(&mut bytes)
            .await
            .map_err(spool)?;
        Ok(bytes)
    }
}

const COMPONENT: &str = "component";
const COMPONENT_SETTING: &str = "[admin] max_component_bytes";
const REPLAY: &str = "replay events";
const REPLAY_SETTING: &str = "[admin] max_replay_bytes";

/// An `application/wasm` body: the component's bytes.
pub async fn read_component<S, E>(body: S, limits: UploadLimits) -> Result<Vec<u8>, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let mut chunks = guarded(body, limits.idle, limits.total);
    let mut spool = Spool::new(COMPONENT, limits.component, COMPONENT_SETTING)?;
    while let Some(chunk) = chunks.next().await {
        spool.write(&chunk?).await?;
    }
    spool.read_back().await
}

/// A `multipart/form-data` body with `boundary`: parts `plugin` (the component) and,
/// optionally, `replay` (.jsonl events). Any other part is refused.
pub async fn read_multipart<S, E>(
    body: S,
    boundary: &str,
    limits: UploadLimits,
) -> Result<Uploaded, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    let chunks = guarded(body, limits.idle, limits.total);
    // Part headers and boundaries get a little room beyond the two parts' bounds.
    let whole = limits
        .component
        .saturating_add(limits.replay)
        .saturating_add(64 << 10);
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["plugin", "replay"])
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream(whole)
                .for_field("plugin", limits.component)
                .for_field("replay", limits.replay),
        );
    let mut multipart = multer::Multipart::with_constraints(chunks, boundary, constraints);
    let mut out = Uploaded::default();
    let mut seen_plugin = false;
    while let Some(mut field) = multipart.next_field().await.map_err(multer_error)? {
        let (what, limit, setting) = match field.name() {
            Some("plugin") if !seen_plugin => (COMPONENT, limits.component, COMPONENT_SETTING),
            Some("replay") if out.replay.is_none() => (REPLAY, limits.replay, REPLAY_SETTING),
            other => {
                return Err(UploadError::Malformed(format!(
                    "the part {other:?} is unexpected or repeated"
                )))
            }
        };
        let file_name = field.file_name().map(str::to_string);
        let mut spool = Spool::new(what, limit, setting)?;
        while let Some(chunk) = field.chunk().await.map_err(multer_error)? {
            spool.write(&chunk).await?;
        }
        let bytes = spool.read_back().await?;
        if what == COMPONENT {
            seen_plugin = true;
            out.plugin = bytes;
            out.file_name = file_name;
        } else {
            out.replay = Some(bytes);
        }
    }
    if !seen_plugin {
        return Err(UploadError::NoPlugin);
    }
    Ok(out)
}

/// A multer error as ours: the stream's own error (a stall, a cut) comes back as it was.
fn multer_error(err: multer::Error) -> UploadError {
    match err {
        multer::Error::StreamReadFailed(inner) => match inner.downcast::<UploadError>() {
            Ok(ours) => *ours,
            Err(other) => UploadError::Broken(other.to_string()),
        },
        multer::Error::FieldSizeExceeded { field_name, limit } => {
            let replay = field_name.as_deref() == Some("replay");
            UploadError::TooLarge {
                what: if replay { REPLAY } else { COMPONENT },
                limit,
                setting: if replay {
                    REPLAY_SETTING
                } else {
                    COMPONENT_SETTING
                },
            }
        }
        multer::Error::StreamSizeExceeded { limit } => UploadError::TooLarge {
            what: "multipart body",
            limit,
            setting: "[admin] max_component_bytes + max_replay_bytes",
        },
        other => UploadError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(component: u64, replay: u64) -> UploadLimits {
        UploadLimits {
            component,
            replay,
            idle: Duration::from_secs(5),
            total: Duration::from_secs(60),
        }
    }

    fn body(chunks: Vec<&'static [u8]>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))))
    }

    #[tokio::test]
    async fn a_component_within_its_bound_is_read_and_one_byte_more_is_refused() {
        let got = read_component(body(vec![b"\0asm", b"\x0d\0\x01\0"]), limits(8, 8))
            .await
            .unwrap();
        assert_eq!(got, b"\0asm\x0d\0\x01\0");
        let err = read_component(body(vec![b"\0asm", b"\x0d\0\x01\0", b"!"]), limits(8, 8))
            .await
            .unwrap_err();
        assert!(
            matches!(err, UploadError::TooLarge { limit: 8, .. }),
            "{err}"
        );
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_that_stalls_or_drags_on_is_cut_off() {
        // A first chunk, then nothing: the idle bound cuts it.
        let stalled =
            futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(b"\0asm"))])
                .chain(futures::stream::pending());
        let err = read_component(stalled, limits(1 << 20, 1 << 20))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::Stalled(_)), "{err}");
        assert_eq!(err.status(), StatusCode::REQUEST_TIMEOUT);
        // A byte every 4 s never stalls, but the whole upload has 60 s.
        let trickle = futures::stream::unfold((), |_| async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), ()))
        });
        let err = read_component(trickle, limits(1 << 20, 1 << 20))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::TooSlow(_)), "{err}");
    }

    /// A multipart body as the CLI makes it (`client::multipart`), each part named
    /// `<name>.bin`, and its boundary.
    fn multipart(parts: &[(&str, &[u8])]) -> (Vec<u8>, String) {
        let names: Vec<String> = parts.iter().map(|(n, _)| format!("{n}.bin")).collect();
        let parts: Vec<(&str, &str, &[u8])> = parts
            .iter()
            .zip(&names)
            .map(|((name, bytes), file)| (*name, file.as_str(), *bytes))
            .collect();
        let (body, content_type) = crate::admin::client::multipart(&parts);
        (body, multer::parse_boundary(content_type).unwrap())
    }

    fn stream_of(bytes: Vec<u8>) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::iter(
            bytes
                .chunks(7)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn multipart_parts_are_bounded_each_and_unknown_parts_are_refused() {
        let (body, boundary) = multipart(&[("plugin", b"component"), ("replay", b"{\"a\":1}\n")]);
        let got = read_multipart(stream_of(body), &boundary, limits(100, 100))
            .await
            .unwrap();
        assert_eq!(got.plugin, b"component");
        assert_eq!(got.replay.as_deref(), Some(&b"{\"a\":1}\n"[..]));
        assert_eq!(got.file_name.as_deref(), Some("plugin.bin"));

        let (body, boundary) = multipart(&[("plugin", b"component"), ("replay", &[b'x'; 50])]);
        let err = read_multipart(stream_of(body), &boundary, limits(100, 20))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                UploadError::TooLarge {
                    what: REPLAY,
                    limit: 20,
                    ..
                }
            ),
            "{err}"
        );
        let (body, boundary) = multipart(&[("plugin", &[b'x'; 50])]);
        let err = read_multipart(stream_of(body), &boundary, limits(20, 100))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::TooLarge { .. }), "{err}");
        let (body, boundary) = multipart(&[("config", b"/etc/passwd")]);
        let err = read_multipart(stream_of(body), &boundary, limits(100, 100))
            .await
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{err}");
        let (body, boundary) = multipart(&[("replay", b"{}\n")]);
        let err = read_multipart(stream_of(body), &boundary, limits(100, 100))
            .await
            .unwrap_err();
        assert!(matches!(err, UploadError::NoPlugin), "{err}");
        let err = read_multipart(
            stream_of(b"garbage".to_vec()),
            "hubwasm-part",
            limits(100, 100),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{err}");
    }
}
