//! One client connection: SASL, then sessions and links, speaking the Event Hubs dialect of
//! AMQP 1.0 (`$cbs` tokens, `$management` reads, partition senders and receivers).
//!
//! The connection task reads frames and owns all session and link state. A writer task owns the
//! socket's write half. Each receiver link has a pump task that waits for credit and events and
//! sends transfers; transfers of one session go out under that session's lock so delivery ids
//! stay in order.
//!
//! The handlers live with their resource: `handshake` (headers, SASL, open), `session` (begin,
//! end, flow), `attach` (attach, detach, link handles), `ingest` (transfers in), `deliver`
//! (transfers out, the pump), `requests` (`$cbs`/`$management` request and reply links), `cbs`
//! (tokens), `management` (reads).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::attach::drop_link;
use super::deliver::*;
use super::handshake::*;
use super::ingest::*;
use super::limits::PRE_OPEN_MAX_FRAME;
use super::namespace::{EventHub, Kick, Namespace, Partition};
use super::requests::*;
use super::session::*;
use crate::amqp::frame::{Frame, FrameType};
use crate::amqp::performative::{self as perf, code, condition, AmqpError, Detach};
use crate::amqp::Value;
use crate::sas::ValidToken;

/// Bytes for the connection's writer, in order. At most 1024 sends wait in its queue; a
/// receiver's pump also waits for its last batch to be written before it sends the next
/// ([`Out::send_tracked`]), so a client that reads slowly (or not at all) makes the endpoint
/// hold at most one batch per receiver, not the partition.
#[derive(Clone)]
pub(super) struct Out {
    tx: mpsc::Sender<Outgoing>,
    /// Bytes sent to writers and not written yet, over all connections
    /// ([`Namespace::queued_bytes`]).
    queued: Arc<AtomicUsize>,
}

pub(super) struct Outgoing {
    bytes: Vec<u8>,
    /// Told once the bytes are written (dropped untold when they cannot be).
    written: Option<oneshot::Sender<()>>,
    _queued: Queued,
}

/// Bytes counted in [`Out::queued`] until written or dropped.
struct Queued {
    gauge: Arc<AtomicUsize>,
    bytes: usize,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.gauge.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Out {
    fn new(tx: mpsc::Sender<Outgoing>, queued: Arc<AtomicUsize>) -> Self {
        Self { tx, queued }
    }

    fn outgoing(&self, bytes: Vec<u8>, written: Option<oneshot::Sender<()>>) -> Outgoing {
        self.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        Outgoing {
            _queued: Queued {
                gauge: self.queued.clone(),
                bytes: bytes.len(),
            },
            bytes,
            written,
        }
    }

    /// Queue `bytes` for the socket (nothing happens once the writer is gone).
    pub(super) async fn send(&self, bytes: Vec<u8>) {
        let _ = self.tx.send(self.outgoing(bytes, None)).await;
    }

    /// Queue `bytes`; the answer completes once they are written, and fails when they will not
    /// be (the socket failed or stalled).
    pub(super) async fn send_tracked(&self, bytes: Vec<u8>) -> oneshot::Receiver<()> {
        let (written, done) = oneshot::channel();
        let _ = self.tx.send(self.outgoing(bytes, Some(written))).await;
        done
    }

    /// Completes when the writer has ended.
    pub(super) async fn closed(&self) {
        self.tx.closed().await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    /// The client passed one of the endpoint's [limits](super::limits::Limits); the connection
    /// is closed with this error.
    #[error("{}: {}", .0.condition, .0.description.as_deref().unwrap_or_default())]
    Limit(AmqpError),
}

pub(super) fn protocol(msg: impl Into<String>) -> ConnectionError {
    ConnectionError::Protocol(msg.into())
}

/// A client passed a limit: the connection closes with `amqp:resource-limit-exceeded` and
/// `description`, which names the limit's config key.
pub(super) fn over_limit(description: impl Into<String>) -> ConnectionError {
    ConnectionError::Limit(AmqpError::new(
        condition::RESOURCE_LIMIT,
        description.into(),
    ))
}

/// Connections told why they are refused at once, above `limits.max_connections`; beyond
/// them a refused socket is closed without a word, so refusing stays cheap.
const MAX_REFUSING: usize = 16;

/// A place among the endpoint's connections, given back when dropped.
pub(super) struct Slot {
    ns: Arc<Namespace>,
    /// Over `limits.max_connections`: the client is told why and dropped.
    refused: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let counter = if self.refused {
            &self.ns.refusing
        } else {
            &self.ns.connections
        };
        counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Take a place for a new connection: `None` when even the refusals are full (close the
/// socket at once).
pub(super) fn admit(ns: &Arc<Namespace>) -> Option<Slot> {
    let take = |counter: &AtomicUsize, max: usize| {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    };
    if take(&ns.connections, ns.limits.max_connections) {
        return Some(Slot {
            ns: ns.clone(),
            refused: false,
        });
    }
    take(&ns.refusing, MAX_REFUSING).then(|| Slot {
        ns: ns.clone(),
        refused: true,
    })
}

/// Serve one connection until it closes.
pub async fn serve(
    stream: TcpStream,
    ns: Arc<Namespace>,
    shutdown: watch::Receiver<bool>,
    slot: Slot,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    match run(stream, ns, shutdown, &slot).await {
        Ok(()) => tracing::debug!(%peer, "Connection closed"),
        Err(err) => tracing::debug!(%peer, error = %err, "Connection ended"),
    }
    drop(slot);
}

pub(super) async fn run(
    stream: TcpStream,
    ns: Arc<Namespace>,
    mut shutdown: watch::Receiver<bool>,
    slot: &Slot,
) -> Result<(), ConnectionError> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    // Header, SASL and open within the handshake timeout, whatever the client does.
    let timeout = ns.limits.handshake_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = match tokio::time::timeout_at(deadline, handshake(stream, &mut buf)).await {
        Ok(stream) => stream?,
        Err(_) => {
            return Err(over_limit(format!(
                "no protocol header and SASL exchange within {} ms \
                 (limits.handshake_timeout_ms)",
                timeout.as_millis()
            )))
        }
    };

    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(1024);
    let out = Out::new(out_tx, ns.queued.clone());
    let stall = ns.limits.write_stall_timeout();
    // Ends when everything sent was written, when the socket fails, or when a write makes no
    // progress for `limits.write_stall_timeout_ms`. Its end closes the channel, which ends
    // the connection (`Connection::serve`) and unblocks everyone sending on it.
    let writer = tokio::spawn(async move {
        while let Some(mut first) = out_rx.recv().await {
            // Whatever else is queued goes out in the same write.
            let mut bytes = std::mem::take(&mut first.bytes);
            let mut sent = vec![first];
            while bytes.len() < 256 * 1024 {
                match out_rx.try_recv() {
                    Ok(mut more) => {
                        bytes.extend_from_slice(&more.bytes);
                        more.bytes = Vec::new();
                        sent.push(more);
                    }
                    Err(_) => break,
                }
            }
            if let Err(err) = write_unless_stalled(&mut wr, &bytes, stall).await {
                tracing::debug!(error = %err, "Write failed; the connection ends");
                break;
            }
            for done in sent {
                if let Some(written) = done.written {
                    let _ = written.send(());
                }
            }
        }
        drop(out_rx);
        // A shutdown only queues a FIN; it cannot wait on the client, but bound it anyway.
        let _ = tokio::time::timeout(stall, wr.shutdown()).await;
    });

    let (kick_tx, mut kick_rx) = mpsc::unbounded_channel();
    let mut conn = Connection {
        ns,
        out,
        peer_max_frame: 512,
        opened: false,
        sessions: HashMap::new(),
        tokens: Vec::new(),
        kick_tx,
        heartbeat: None,
        held: Vec::new(),
        incomplete: Arc::new(AtomicU64::new(0)),
    };

    // The open comes first, within the handshake deadline and at most 512 bytes.
    let first =
        tokio::time::timeout_at(deadline, read_frame(&mut rd, &mut buf, PRE_OPEN_MAX_FRAME));
    let result = match first.await {
        Err(_) => Err(over_limit(format!(
            "no open within {} ms of connecting (limits.handshake_timeout_ms)",
            timeout.as_millis()
        ))),
        Ok(Err(ConnectionError::Protocol(e))) if e.contains("larger than") => {
            Err(protocol(format!("{e} before the open (frames before the open are at most {PRE_OPEN_MAX_FRAME} bytes)")))
        }
        Ok(Err(err)) => Err(err),
        Ok(Ok(frame)) if frame.body.as_ref().and_then(Value::descriptor_code) != Some(code::OPEN) => {
            Err(protocol("the first frame must be an open"))
        }
        Ok(Ok(frame)) => conn.handle(frame).await.map(|_| ()),
    };
    let result = match result {
        Err(err) => Err(err),
        Ok(()) if slot.refused => Err(over_limit(format!(
            "the endpoint serves at most {} connections (limits.max_connections)",
            conn.ns.limits.max_connections
        ))),
        Ok(()) => {
            conn.serve(&mut rd, &mut buf, &mut kick_rx, &mut shutdown)
                .await
        }
    };
    if let Err(err) = &result {
        conn.close_with(err).await;
    }
    conn.teardown();
    drop(conn);
    // What is still queued (a close) gets as long as one stalled write, not more.
    let writer_abort = writer.abort_handle();
    if tokio::time::timeout(stall, writer).await.is_err() {
        writer_abort.abort();
    }
    result
}

/// Write all of `bytes`, failing with `TimedOut` when one write makes no progress for `stall`
/// (the client reads nothing; its socket buffers are full).
async fn write_unless_stalled(
    wr: &mut OwnedWriteHalf,
    bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        match tokio::time::timeout(stall, wr.write(rest)).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => rest = &rest[n..],
            Ok(Err(err)) => return Err(err),
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the client read nothing for {} ms (limits.write_stall_timeout_ms)",
                        stall.as_millis()
                    ),
                ))
            }
        }
    }
    Ok(())
}

impl Connection {
    /// Frames after the open, until the connection ends.
    async fn serve(
        &mut self,
        rd: &mut OwnedReadHalf,
        buf: &mut Vec<u8>,
        kick_rx: &mut mpsc::UnboundedReceiver<Kick>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ConnectionError> {
        let max_frame = self.ns.limits.max_frame_bytes;
        let idle = Duration::from_millis(2 * self.ns.limits.idle_timeout_ms as u64);
        // Heartbeats go out on a fixed beat once the client's open asks for them, however busy
        // the connection is: cheap (8 bytes), and the client's idle clock is never in doubt.
        let mut heartbeat = self.heartbeat.map(|every| {
            let mut beat = tokio::time::interval(every);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            beat
        });
        loop {
            tokio::select! {
                frame = tokio::time::timeout(idle, read_frame(rd, buf, max_frame)) => {
                    let frame = match frame {
                        Ok(Ok(frame)) => frame,
                        Ok(Err(err)) => return Err(err),
                        Err(_) => return Err(protocol("idle timeout")),
                    };
                    if !self.handle(frame).await? {
                        return Ok(());
                    }
                }
                Some(kick) = kick_rx.recv() => self.kicked(kick).await,
                // The writer ended: the socket failed, or the client stopped reading.
                _ = self.out.closed() => {
                    return Err(ConnectionError::Io(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        format!(
                            "the socket cannot be written (failed, or no progress for {} ms: \
                             limits.write_stall_timeout_ms)",
                            self.ns.limits.write_stall_timeout_ms
                        ),
                    )));
                }
                _ = hold_until(self.next_expiry()) => self.expire_links().await,
                _ = hold_until(self.held.iter().map(|h| h.at).min()) => self.release_held().await,
                _ = tick(heartbeat.as_mut()) => self.send_raw(Frame::heartbeat()).await,
                _ = shutdown.changed() => {
                    let error = AmqpError::new("amqp:connection:forced", "the endpoint is shutting down");
                    self.send(0, perf::close(Some(&error))).await;
                    return Ok(());
                }
            }
        }
    }

    /// Close the connection with the error that ends it (our open first, if it was not sent:
    /// a close may only follow an open).
    async fn close_with(&mut self, err: &ConnectionError) {
        let error = match err {
            ConnectionError::Io(_) => return, // the socket is gone
            ConnectionError::Limit(error) => error.clone(),
            ConnectionError::Protocol(msg) => AmqpError::new(condition::FRAMING_ERROR, msg.clone()),
        };
        if !self.opened {
            self.send(0, self.our_open().to_value()).await;
        }
        self.send(0, perf::close(Some(&error))).await;
    }
}

pub(super) async fn hold_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn tick(beat: Option<&mut tokio::time::Interval>) {
    match beat {
        Some(beat) => {
            beat.tick().await;
        }
        None => std::future::pending().await,
    }
}

pub(super) struct Connection {
    pub(super) ns: Arc<Namespace>,
    pub(super) out: Out,
    pub(super) peer_max_frame: u32,
    pub(super) sessions: HashMap<u16, Session>,
    pub(super) tokens: Vec<ValidToken>,
    pub(super) kick_tx: mpsc::UnboundedSender<Kick>,
    pub(super) heartbeat: Option<Duration>,
    /// Whether our open was sent.
    pub(super) opened: bool,
    /// Bytes of deliveries still arriving on this connection's links
    /// (`limits.max_incomplete_bytes_per_connection`).
    pub(super) incomplete: Arc<AtomicU64>,
    /// Frames sent a little later on purpose (see `on_detach` and `settle`); dropped with
    /// their session.
    pub(super) held: Vec<Held>,
}

/// A frame to send at `at`, unless its session ends first.
pub(super) struct Held {
    pub(super) channel: u16,
    pub(super) body: Value,
    pub(super) at: tokio::time::Instant,
}

pub(super) enum Link {
    /// Client sends events to an event hub (or one partition).
    Ingest {
        /// The entity path the client's token must keep covering (with `Send`).
        path: String,
        hub: Arc<EventHub>,
        partition: Option<Arc<Partition>>,
        credit: u32,
        delivery_count: u32,
        pending: Option<Pending>,
        /// See [`settles_late`].
        settle_late: bool,
    },
    /// Client sends requests to `$cbs` or `$management`.
    Requests {
        node: Node,
        credit: u32,
        delivery_count: u32,
        pending: Option<Pending>,
        /// See [`settles_late`].
        settle_late: bool,
    },
    /// We send responses from `$cbs` or `$management`; responses wait here for link credit.
    Replies {
        node: Node,
        address: Option<String>,
        flow: Arc<LinkFlow>,
        queue: std::collections::VecDeque<Vec<u8>>,
    },
    /// We send a partition's events.
    Deliver {
        /// The entity path the client's token must keep covering (with `Listen`).
        path: String,
        reader_id: u64,
        group: String,
        partition: Arc<Partition>,
        flow: Arc<LinkFlow>,
        pump: JoinHandle<()>,
    },
}

impl Connection {
    pub(super) async fn send_raw(&self, frame: Frame) {
        tracing::trace!(channel = frame.channel, performative = ?frame.body.as_ref().and_then(crate::amqp::Value::descriptor_code), "Frame out");
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        self.out.send(bytes).await;
    }

    pub(super) async fn send(&self, channel: u16, body: Value) {
        self.send_raw(Frame::amqp(channel, body)).await
    }

    /// Handle one frame; `Ok(false)` when the connection is done.
    pub(super) async fn handle(&mut self, frame: Frame) -> Result<bool, ConnectionError> {
        if frame.kind != FrameType::Amqp {
            return Err(protocol("SASL frame after SASL"));
        }
        let Some(body) = frame.body else {
            return Ok(true); // heartbeat
        };
        let channel = frame.channel;
        tracing::trace!(channel, performative = ?body.descriptor_code(), "Frame in");
        match body.descriptor_code() {
            Some(code::OPEN) => self.on_open(&body).await?,
            Some(code::BEGIN) => self.on_begin(channel, &body).await?,
            Some(code::ATTACH) => self.on_attach(channel, &body).await?,
            Some(code::FLOW) => self.on_flow(channel, &body).await?,
            Some(code::TRANSFER) => self.on_transfer(channel, &body, frame.payload).await?,
            Some(code::DISPOSITION) => {} // we send settled or ignore client outcomes
            Some(code::DETACH) => self.on_detach(channel, &body).await?,
            Some(code::END) => self.on_end(channel).await,
            Some(code::CLOSE) => {
                self.send(0, perf::close(None)).await;
                return Ok(false);
            }
            other => return Err(protocol(format!("unexpected performative {other:?}"))),
        }
        Ok(true)
    }

    pub(super) fn hold(&mut self, channel: u16, body: Value, delay: Duration) {
        let at = tokio::time::Instant::now() + delay;
        self.held.push(Held { channel, body, at });
    }

    pub(super) async fn release_held(&mut self) {
        let now = tokio::time::Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.at <= now);
        self.held = later;
        for held in due {
            self.send(held.channel, held.body).await;
        }
    }

    /// A receiver must go: another connection's receiver with a higher epoch took our
    /// partition, or its pump failed. Its link is detached with the kick's condition and its
    /// place on the partition given back.
    pub(super) async fn kicked(&mut self, kick: Kick) {
        let found = self.sessions.iter_mut().find_map(|(channel, session)| {
            let handle = session.links.iter().find_map(|(h, l)| match l {
                Link::Deliver { reader_id, .. } if *reader_id == kick.reader_id => Some(*h),
                _ => None,
            })?;
            Some((*channel, handle, session.links.remove(&handle)?))
        });
        if let Some((channel, handle, link)) = found {
            tracing::debug!(channel, handle, condition = kick.condition, reason = %kick.reason, "Receiver detached");
            // Stops the pump (if it still runs) and gives back its place among the readers
            // (a stolen receiver was already removed; removing it again does nothing).
            drop_link(link);
            let detach = Detach {
                handle,
                closed: true,
                error: Some(AmqpError::new(kick.condition, kick.reason)),
            };
            self.send(channel, detach.to_value()).await;
        }
    }

    pub(super) fn teardown(&mut self) {
        for (_, session) in std::mem::take(&mut self.sessions) {
            self.drop_session(session);
        }
    }
}
