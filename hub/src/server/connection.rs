//! One client connection: SASL, then sessions and links, speaking the Event Hubs dialect of
//! AMQP 1.0 (`$cbs` tokens, `$management` reads, partition senders and receivers).
//!
//! The connection task reads frames and owns all session and link state. A writer task owns the
//! socket's write half. Each receiver link has a pump task that waits for credit and events and
//! sends transfers; transfers of one session go out under that session's lock so delivery ids
//! stay in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::filter;
use super::namespace::{now_ms, EventHub, Kick, Namespace, Partition, ReaderRefusal};
use super::stored;
use crate::amqp::frame::{Frame, FrameType, AMQP_HEADER, SASL_HEADER};
use crate::amqp::message::{property, Message, BATCH_FORMAT};
use crate::amqp::performative::{
    self as perf, code, condition, AmqpError, Attach, Begin, DeliveryState, Detach, Disposition,
    Flow, Open, Role, Source, Target, Transfer,
};
use crate::amqp::Value;
use crate::sas::{self, ValidToken};

/// Largest frame we accept and announce.
pub const MAX_FRAME: u32 = 256 * 1024;
/// Largest message (or batch) a sender may send, as Event Hubs Standard: 1 MiB.
pub const MAX_MESSAGE: u64 = 1024 * 1024;
/// Credit given to sender links, topped up when half is used.
const SENDER_CREDIT: u32 = 1000;
/// Our session incoming window, topped up when half is used.
const SESSION_WINDOW: u32 = 5000;
/// Highest channel a client may begin a session on (our open's channel-max).
const CHANNEL_MAX: u16 = 255;
/// Highest link handle a client may use in a session (our begin's handle-max).
const HANDLE_MAX: u32 = 255;
/// Idle timeout we announce; the peer must send something (a heartbeat at least) this often.
const IDLE_TIMEOUT_MS: u32 = 120_000;
/// Responses a `$cbs`/`$management` reply link keeps while the client gives it no credit;
/// the responses to later requests are dropped (the request delivery is rejected).
const MAX_QUEUED_REPLIES: usize = SENDER_CREDIT as usize;
/// SAS tokens a connection keeps (one per resource).
const MAX_TOKENS: usize = 1000;
/// Events read from the log per pump round.
const PUMP_BATCH: usize = 256;

const EPOCH_PROPERTY: &str = "com.microsoft:epoch";
const RUNTIME_METRIC: &str = "com.microsoft:enable-receiver-runtime-metric";

type Out = mpsc::Sender<Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
}

fn protocol(msg: impl Into<String>) -> ConnectionError {
    ConnectionError::Protocol(msg.into())
}

/// Serve one connection until it closes.
pub async fn serve(stream: TcpStream, ns: Arc<Namespace>, shutdown: watch::Receiver<bool>) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    match run(stream, ns, shutdown).await {
        Ok(()) => tracing::debug!(%peer, "Connection closed"),
        Err(err) => tracing::debug!(%peer, error = %err, "Connection ended"),
    }
}

async fn read_frame(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Result<Frame, ConnectionError> {
    loop {
        match Frame::peek_size(buf, MAX_FRAME).map_err(|e| protocol(e.to_string()))? {
            Some(size) if buf.len() >= size => {
                let frame = Frame::decode(&buf[..size]).map_err(|e| protocol(e.to_string()));
                buf.drain(..size);
                return frame;
            }
            _ => {
                let mut chunk = [0u8; 16 * 1024];
                let n = rd.read(&mut chunk).await?;
                if n == 0 {
                    return Err(protocol("peer closed the connection"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

async fn run(
    mut stream: TcpStream,
    ns: Arc<Namespace>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let _ = stream.set_nodelay(true);
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    let mut buf = Vec::new();
    if header == SASL_HEADER {
        stream.write_all(&SASL_HEADER).await?;
        let mut out = Vec::new();
        Frame::sasl(perf::sasl_mechanisms(&["ANONYMOUS", "MSSBCBS", "PLAIN"])).encode(&mut out);
        stream.write_all(&out).await?;
        let (mut rd, mut wr) = stream.into_split();
        let init = read_frame(&mut rd, &mut buf).await?;
        let mechanism = init
            .body
            .as_ref()
            .and_then(perf::sasl_init_mechanism)
            .ok_or_else(|| protocol("expected sasl-init"))?;
        tracing::trace!(%mechanism, "SASL");
        // Authorisation happens per entity through $cbs tokens, as in Event Hubs.
        let mut out = Vec::new();
        Frame::sasl(perf::sasl_outcome(0)).encode(&mut out);
        wr.write_all(&out).await?;
        // The AMQP header follows; it may already be in the buffer.
        while buf.len() < 8 {
            let mut chunk = [0u8; 1024];
            let n = rd.read(&mut chunk).await?;
            if n == 0 {
                return Err(protocol("closed after SASL"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        header.copy_from_slice(&buf[..8]);
        buf.drain(..8);
        stream = rd.reunite(wr).map_err(|e| protocol(e.to_string()))?;
    }
    if header != AMQP_HEADER {
        let _ = stream.write_all(&AMQP_HEADER).await;
        return Err(protocol(format!(
            "unsupported protocol header {header:02x?}"
        )));
    }
    stream.write_all(&AMQP_HEADER).await?;

    let (mut rd, mut wr) = stream.into_split();
    let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(1024);
    let writer = tokio::spawn(async move {
        while let Some(mut bytes) = out_rx.recv().await {
            // Whatever else is queued goes out in the same write.
            while bytes.len() < 256 * 1024 {
                match out_rx.try_recv() {
                    Ok(more) => bytes.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    let (kick_tx, mut kick_rx) = mpsc::unbounded_channel();
    let mut conn = Connection {
        ns,
        out,
        peer_max_frame: 512,
        sessions: HashMap::new(),
        tokens: Vec::new(),
        kick_tx,
        heartbeat: None,
        held: Vec::new(),
    };
    let idle = Duration::from_millis(2 * IDLE_TIMEOUT_MS as u64);
    // Heartbeats go out on a fixed beat once the client's open asks for them, however busy
    // the connection is: cheap (8 bytes), and the client's idle clock is never in doubt.
    let mut heartbeat: Option<tokio::time::Interval> = None;
    let result = loop {
        if heartbeat.is_none() {
            heartbeat = conn.heartbeat.map(|every| {
                let mut beat = tokio::time::interval(every);
                beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                beat
            });
        }
        tokio::select! {
            frame = tokio::time::timeout(idle, read_frame(&mut rd, &mut buf)) => {
                let frame = match frame {
                    Ok(Ok(frame)) => frame,
                    Ok(Err(err)) => break Err(err),
                    Err(_) => break Err(protocol("idle timeout")),
                };
                match conn.handle(frame).await {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(err) => {
                        let error = AmqpError::new(condition::FRAMING_ERROR, err.to_string());
                        conn.send(0, perf::close(Some(&error))).await;
                        break Err(err);
                    }
                }
            }
            Some(kick) = kick_rx.recv() => conn.kicked(kick).await,
            _ = hold_until(conn.held.iter().map(|h| h.at).min()) => conn.release_held().await,
            _ = tick(heartbeat.as_mut()) => conn.send_raw(Frame::heartbeat()).await,
            _ = shutdown.changed() => {
                let error = AmqpError::new("amqp:connection:forced", "the endpoint is shutting down");
                conn.send(0, perf::close(Some(&error))).await;
                break Ok(());
            }
        }
    };
    conn.teardown();
    drop(conn);
    let _ = writer.await;
    result
}

async fn hold_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(beat: Option<&mut tokio::time::Interval>) {
    match beat {
        Some(beat) => {
            beat.tick().await;
        }
        None => std::future::pending().await,
    }
}

struct Connection {
    ns: Arc<Namespace>,
    out: Out,
    peer_max_frame: u32,
    sessions: HashMap<u16, Session>,
    tokens: Vec<ValidToken>,
    kick_tx: mpsc::UnboundedSender<Kick>,
    heartbeat: Option<Duration>,
    /// Frames sent a little later on purpose (see `on_detach` and `settle`); dropped with
    /// their session.
    held: Vec<Held>,
}

/// A frame to send at `at`, unless its session ends first.
struct Held {
    channel: u16,
    body: Value,
    at: tokio::time::Instant,
}

/// How long a detach reply on a `$cbs`/`$management` link is held back.
const DETACH_HOLD: Duration = Duration::from_millis(100);

/// When the settled outcome follows the unsettled one for clients that settle late.
const SETTLE_AGAIN: Duration = Duration::from_millis(20);

/// Whether a sending client needs its outcomes twice (see `Connection::settle`): it leaves
/// settlement to us in mode "first". The Python SDK asks for mode "second" and completes only on
/// settled outcomes, so it gets one settled outcome at once.
fn settles_late(attach: &Attach) -> bool {
    attach.rcv_settle_mode == 0 && attach.snd_settle_mode != 1
}

/// The outgoing half of a session, shared with its receiver pumps.
struct SessionOut {
    channel: u16,
    state: tokio::sync::Mutex<OutState>,
    window: Notify,
}

struct OutState {
    next_outgoing_id: u32,
    next_delivery_id: u32,
    remote_incoming_window: u32,
}

struct Session {
    out: Arc<SessionOut>,
    links: HashMap<u32, Link>,
    next_incoming_id: u32,
    incoming_window: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Node {
    Cbs,
    Management,
}

/// Credit of a link on which we send.
struct LinkFlow {
    state: Mutex<FlowState>,
    changed: Notify,
}

#[derive(Default)]
struct FlowState {
    credit: u32,
    delivery_count: u32,
    drain: bool,
}

enum Link {
    /// Client sends events to an event hub (or one partition).
    Ingest {
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
        reader_id: u64,
        group: String,
        partition: Arc<Partition>,
        flow: Arc<LinkFlow>,
        pump: JoinHandle<()>,
    },
}

/// A multi-frame delivery being received.
struct Pending {
    delivery_id: Option<u32>,
    settled: bool,
    format: u32,
    bytes: Vec<u8>,
    /// Over [`MAX_MESSAGE`]: the rest is read and dropped, the delivery is rejected.
    oversized: bool,
}

/// Strip `amqps://host/` or `sb://host/` from an address, leaving the entity path.
fn entity(address: &str) -> String {
    sas::entity_path(address)
}

impl Connection {
    async fn send_raw(&self, frame: Frame) {
        tracing::trace!(channel = frame.channel, performative = ?frame.body.as_ref().and_then(crate::amqp::Value::descriptor_code), "Frame out");
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        let _ = self.out.send(bytes).await;
    }

    async fn send(&self, channel: u16, body: Value) {
        self.send_raw(Frame::amqp(channel, body)).await
    }

    /// Handle one frame; `Ok(false)` when the connection is done.
    async fn handle(&mut self, frame: Frame) -> Result<bool, ConnectionError> {
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
            Some(code::END) => {
                // The session is going: its held frames are not wanted any more.
                self.held.retain(|h| h.channel != channel);
                if let Some(session) = self.sessions.remove(&channel) {
                    self.drop_session(session);
                }
                self.send(channel, perf::end(None)).await;
            }
            Some(code::CLOSE) => {
                self.send(0, perf::close(None)).await;
                return Ok(false);
            }
            other => return Err(protocol(format!("unexpected performative {other:?}"))),
        }
        Ok(true)
    }

    async fn on_open(&mut self, body: &Value) -> Result<(), ConnectionError> {
        let open = Open::from_value(body).ok_or_else(|| protocol("malformed open"))?;
        self.peer_max_frame = open.max_frame_size.clamp(512, MAX_FRAME);
        self.heartbeat = open
            .idle_time_out
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis((ms / 2).max(100) as u64));
        let reply = Open {
            container_id: format!("hubwasm-{}", self.ns.name),
            hostname: None,
            max_frame_size: MAX_FRAME,
            channel_max: CHANNEL_MAX,
            idle_time_out: Some(IDLE_TIMEOUT_MS),
            offered_capabilities: Vec::new(),
            desired_capabilities: Vec::new(),
            properties: Vec::new(),
        };
        self.send(0, reply.to_value()).await;
        Ok(())
    }

    async fn on_begin(&mut self, channel: u16, body: &Value) -> Result<(), ConnectionError> {
        let begin = Begin::from_value(body).ok_or_else(|| protocol("malformed begin"))?;
        // Sessions are kept per channel: keep to the channel-max we announced, so a client
        // cannot grow them without bound.
        if channel > CHANNEL_MAX {
            return Err(protocol(format!(
                "begin on channel {channel}, above the channel-max {CHANNEL_MAX}"
            )));
        }
        let out = Arc::new(SessionOut {
            channel,
            state: tokio::sync::Mutex::new(OutState {
                next_outgoing_id: 1,
                next_delivery_id: 0,
                remote_incoming_window: begin.incoming_window,
            }),
            window: Notify::new(),
        });
        let session = Session {
            out,
            links: HashMap::new(),
            next_incoming_id: begin.next_outgoing_id,
            incoming_window: SESSION_WINDOW,
        };
        if let Some(old) = self.sessions.insert(channel, session) {
            // A begin on a channel still in use: the old session is gone for the client, so
            // release its receivers (their pumps and places on the partitions) like an end.
            tracing::debug!(channel, "Begin on a channel in use replaces its session");
            self.held.retain(|h| h.channel != channel);
            self.drop_session(old);
        }
        let reply = Begin {
            remote_channel: Some(channel),
            next_outgoing_id: 1,
            incoming_window: SESSION_WINDOW,
            outgoing_window: SESSION_WINDOW,
            handle_max: HANDLE_MAX,
            properties: Vec::new(),
        };
        self.send(channel, reply.to_value()).await;
        Ok(())
    }

    /// Refuse an attach: answer it (as the spec requires) and detach with the error at once.
    async fn refuse(&self, channel: u16, attach: &Attach, error: AmqpError) {
        tracing::debug!(link = %attach.name, condition = %error.condition, description = ?error.description, "Attach refused");
        let reply = Attach {
            name: attach.name.clone(),
            handle: attach.handle,
            role: flip(attach.role),
            snd_settle_mode: attach.snd_settle_mode,
            rcv_settle_mode: attach.rcv_settle_mode,
            source: if attach.role == Role::Receiver {
                None
            } else {
                attach.source.clone()
            },
            target: if attach.role == Role::Sender {
                None
            } else {
                attach.target.clone()
            },
            initial_delivery_count: (attach.role == Role::Receiver).then_some(0),
            max_message_size: Some(MAX_MESSAGE),
            offered_capabilities: Vec::new(),
            desired_capabilities: Vec::new(),
            properties: Vec::new(),
        };
        self.send(channel, reply.to_value()).await;
        let detach = Detach {
            handle: attach.handle,
            closed: true,
            error: Some(error),
        };
        self.send(channel, detach.to_value()).await;
    }

    /// Keep a validated token. One per resource (a renewal replaces the token it renews), and
    /// at most [`MAX_TOKENS`]: a client putting ever more tokens loses its oldest ones.
    fn keep_token(&mut self, valid: ValidToken) {
        self.tokens.retain(|t| t.resource != valid.resource);
        if self.tokens.len() >= MAX_TOKENS {
            let excess = self.tokens.len() + 1 - MAX_TOKENS;
            self.tokens.drain(..excess);
        }
        self.tokens.push(valid);
    }

    /// Whether a valid token covers `entity`.
    fn authorized(&mut self, entity: &str) -> Result<(), AmqpError> {
        let now = (now_ms() / 1000) as u64;
        self.tokens.retain(|t| t.expires_at > now);
        if self.tokens.iter().any(|t| t.covers(entity).is_ok()) {
            Ok(())
        } else {
            Err(AmqpError::new(
                condition::UNAUTHORIZED,
                format!(
                    "no valid token for `{entity}`: put a SAS token for it on $cbs first \
                     (status 401)"
                ),
            ))
        }
    }

    async fn on_attach(&mut self, channel: u16, body: &Value) -> Result<(), ConnectionError> {
        let attach = Attach::from_value(body).ok_or_else(|| protocol("malformed attach"))?;
        tracing::trace!(attach = ?body, "Attach in");
        if !self.sessions.contains_key(&channel) {
            return Err(protocol(format!("attach on unknown channel {channel}")));
        }
        // Links are kept per handle: keep to the handle-max we announced.
        if attach.handle > HANDLE_MAX {
            return Err(protocol(format!(
                "attach with handle {}, above the handle-max {HANDLE_MAX}",
                attach.handle
            )));
        }
        let address = match attach.role {
            Role::Sender => attach.target.as_ref().and_then(|t| t.address.clone()),
            Role::Receiver => attach.source.as_ref().and_then(|s| s.address.clone()),
        }
        .unwrap_or_default();
        let path = entity(&address);
        let segments: Vec<&str> = path.split('/').collect();
        let not_found = |what: String| AmqpError::new(condition::NOT_FOUND, what);

        let link = match (attach.role, segments.as_slice()) {
            (Role::Sender, ["$cbs"]) | (Role::Sender, ["$management"]) => Link::Requests {
                node: node(segments[0]),
                credit: SENDER_CREDIT,
                delivery_count: attach.initial_delivery_count.unwrap_or(0),
                pending: None,
                settle_late: settles_late(&attach),
            },
            (Role::Receiver, ["$cbs"]) | (Role::Receiver, ["$management"]) => Link::Replies {
                node: node(segments[0]),
                address: attach.target.as_ref().and_then(|t| t.address.clone()),
                flow: Arc::new(LinkFlow {
                    state: Mutex::new(FlowState::default()),
                    changed: Notify::new(),
                }),
                queue: std::collections::VecDeque::new(),
            },
            (Role::Sender, [hub]) | (Role::Sender, [hub, "Partitions" | "partitions", _]) => {
                let Some(eh) = self.ns.hub(hub).cloned() else {
                    self.refuse(
                        channel,
                        &attach,
                        not_found(format!("event hub `{hub}` does not exist")),
                    )
                    .await;
                    return Ok(());
                };
                let partition = match segments.get(2) {
                    Some(id) => match eh.partition(id) {
                        Some(p) => Some(p.clone()),
                        None => {
                            let e = not_found(format!("event hub `{hub}` has no partition `{id}`"));
                            self.refuse(channel, &attach, e).await;
                            return Ok(());
                        }
                    },
                    None => None,
                };
                if let Err(e) = self.authorized(&path) {
                    self.refuse(channel, &attach, e).await;
                    return Ok(());
                }
                Link::Ingest {
                    hub: eh,
                    partition,
                    credit: SENDER_CREDIT,
                    delivery_count: attach.initial_delivery_count.unwrap_or(0),
                    pending: None,
                    settle_late: settles_late(&attach),
                }
            }
            (
                Role::Receiver,
                [hub, "ConsumerGroups" | "consumergroups", group, "Partitions" | "partitions", id],
            ) => {
                let Some(eh) = self.ns.hub(hub).cloned() else {
                    self.refuse(
                        channel,
                        &attach,
                        not_found(format!("event hub `{hub}` does not exist")),
                    )
                    .await;
                    return Ok(());
                };
                if !eh.has_consumer_group(group) {
                    let e = not_found(format!("event hub `{hub}` has no consumer group `{group}`"));
                    self.refuse(channel, &attach, e).await;
                    return Ok(());
                }
                let Some(partition) = eh.partition(id).cloned() else {
                    let e = not_found(format!("event hub `{hub}` has no partition `{id}`"));
                    self.refuse(channel, &attach, e).await;
                    return Ok(());
                };
                if let Err(e) = self.authorized(&path) {
                    self.refuse(channel, &attach, e).await;
                    return Ok(());
                }
                let filters = attach
                    .source
                    .as_ref()
                    .map(|s| s.filter.clone())
                    .unwrap_or_default();
                let start = match filter::from_filter_set(&filters) {
                    Ok(start) => start,
                    Err(msg) => {
                        self.refuse(
                            channel,
                            &attach,
                            AmqpError::new(condition::INVALID_FIELD, msg),
                        )
                        .await;
                        return Ok(());
                    }
                };
                let epoch = attach
                    .properties
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(EPOCH_PROPERTY))
                    .and_then(|(_, v)| v.as_i64());
                let reader_id = self.ns.next_reader_id();
                if let Err(refusal) =
                    partition.add_reader(group, reader_id, epoch, self.kick_tx.clone())
                {
                    let e = match refusal {
                        ReaderRefusal::EpochTooLow(msg) => AmqpError::new(condition::STOLEN, msg),
                        ReaderRefusal::TooManyReaders => AmqpError::new(
                            condition::RESOURCE_LIMIT,
                            format!(
                                "at most {} receivers may read partition {id} of consumer group {group}",
                                super::namespace::MAX_READERS
                            ),
                        ),
                    };
                    self.refuse(channel, &attach, e).await;
                    return Ok(());
                }
                let metrics = attach
                    .desired_capabilities
                    .iter()
                    .any(|c| c == RUNTIME_METRIC);
                let flow = Arc::new(LinkFlow {
                    state: Mutex::new(FlowState::default()),
                    changed: Notify::new(),
                });
                let first = partition.resolve(start);
                let session_out = self.sessions[&channel].out.clone();
                let pump = tokio::spawn(pump(PumpArgs {
                    partition: partition.clone(),
                    flow: flow.clone(),
                    session: session_out,
                    out: self.out.clone(),
                    handle: attach.handle,
                    next_sequence: first,
                    max_frame: self.peer_max_frame,
                    // Settled unless the client insists on settling itself: Event Hubs needs no
                    // outcome for a read, and an unsettled delivery costs the client a disposition.
                    settled: attach.snd_settle_mode != 0,
                    metrics,
                }));
                tracing::debug!(hub = %eh.name, %group, partition = %id, ?start, first, ?epoch, properties = ?attach.properties, "Receiver attached");
                self.reply_attach(channel, &attach, metrics).await;
                self.insert_link(
                    channel,
                    attach.handle,
                    Link::Deliver {
                        reader_id,
                        group: group.to_string(),
                        partition,
                        flow,
                        pump,
                    },
                );
                return Ok(());
            }
            _ => {
                let e = not_found(format!("no messaging entity at `{address}`"));
                self.refuse(channel, &attach, e).await;
                return Ok(());
            }
        };
        self.reply_attach(channel, &attach, false).await;
        let grant = match &link {
            Link::Ingest { delivery_count, .. } | Link::Requests { delivery_count, .. } => {
                Some(*delivery_count)
            }
            _ => None,
        };
        self.insert_link(channel, attach.handle, link);
        if let Some(delivery_count) = grant {
            self.send_link_flow(channel, attach.handle, delivery_count, SENDER_CREDIT)
                .await;
        }
        Ok(())
    }

    fn session(&mut self, channel: u16) -> &mut Session {
        self.sessions.get_mut(&channel).expect("checked by caller")
    }

    /// Keep a newly attached link. An attach on a handle still in use replaces that link: the
    /// old one is released (its pump stopped, its place on the partition given back) instead of
    /// being dropped with its pump still running and its reader still registered.
    fn insert_link(&mut self, channel: u16, handle: u32, link: Link) {
        if let Some(old) = self.session(channel).links.insert(handle, link) {
            tracing::debug!(
                channel,
                handle,
                "Attach on a handle in use replaces its link"
            );
            drop_link(old);
        }
    }

    async fn reply_attach(&self, channel: u16, attach: &Attach, metrics: bool) {
        let reply = Attach {
            name: attach.name.clone(),
            handle: attach.handle,
            role: flip(attach.role),
            snd_settle_mode: attach.snd_settle_mode,
            // We always settle on our side first (Python asks for "second" but completes on
            // settled dispositions).
            rcv_settle_mode: 0,
            source: attach.source.clone().or_else(|| Some(Source::default())),
            target: attach.target.clone().or_else(|| Some(Target::default())),
            initial_delivery_count: (attach.role == Role::Receiver).then_some(0),
            max_message_size: Some(MAX_MESSAGE),
            offered_capabilities: if metrics {
                vec![RUNTIME_METRIC.to_string()]
            } else {
                Vec::new()
            },
            desired_capabilities: Vec::new(),
            properties: attach.properties.clone(),
        };
        self.send(channel, reply.to_value()).await;
    }

    async fn send_link_flow(&self, channel: u16, handle: u32, delivery_count: u32, credit: u32) {
        let Some(session) = self.sessions.get(&channel) else {
            return;
        };
        let next_outgoing_id = session.out.state.lock().await.next_outgoing_id;
        let flow = Flow {
            next_incoming_id: Some(session.next_incoming_id),
            incoming_window: session.incoming_window,
            next_outgoing_id,
            outgoing_window: SESSION_WINDOW,
            handle: Some(handle),
            delivery_count: Some(delivery_count),
            link_credit: Some(credit),
            available: None,
            drain: false,
            echo: false,
            properties: Vec::new(),
        };
        self.send(channel, flow.to_value()).await;
    }

    async fn on_flow(&mut self, channel: u16, body: &Value) -> Result<(), ConnectionError> {
        let flow = Flow::from_value(body).ok_or_else(|| protocol("malformed flow"))?;
        let Some(session) = self.sessions.get(&channel) else {
            return Err(protocol(format!("flow on unknown channel {channel}")));
        };
        {
            let mut st = session.out.state.lock().await;
            st.remote_incoming_window = match flow.next_incoming_id {
                Some(next_in) => next_in
                    .wrapping_add(flow.incoming_window)
                    .wrapping_sub(st.next_outgoing_id),
                None => flow.incoming_window,
            };
        }
        session.out.window.notify_waiters();
        if let Some(handle) = flow.handle {
            match session.links.get(&handle) {
                Some(Link::Deliver { flow: lf, .. }) | Some(Link::Replies { flow: lf, .. }) => {
                    {
                        let mut st = lf.state.lock().unwrap_or_else(|e| e.into_inner());
                        let their_count = flow.delivery_count.unwrap_or(st.delivery_count);
                        st.credit = their_count
                            .wrapping_add(flow.link_credit.unwrap_or(0))
                            .wrapping_sub(st.delivery_count);
                        st.drain = flow.drain;
                    }
                    lf.changed.notify_waiters();
                    lf.changed.notify_one();
                    self.flush_replies(channel, handle).await;
                }
                _ => {
                    if flow.echo {
                        // Report our receiving state for that link.
                        if let Some(Link::Ingest {
                            credit,
                            delivery_count,
                            ..
                        }) = session.links.get(&handle)
                        {
                            let (c, d) = (*credit, *delivery_count);
                            self.send_link_flow(channel, handle, d, c).await;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_transfer(
        &mut self,
        channel: u16,
        body: &Value,
        payload: Vec<u8>,
    ) -> Result<(), ConnectionError> {
        let transfer = Transfer::from_value(body).ok_or_else(|| protocol("malformed transfer"))?;
        tracing::trace!(channel, handle = transfer.handle, delivery_id = ?transfer.delivery_id, more = transfer.more, bytes = payload.len(), "Transfer");
        let Some(session) = self.sessions.get_mut(&channel) else {
            return Err(protocol(format!("transfer on unknown channel {channel}")));
        };
        session.next_incoming_id = session.next_incoming_id.wrapping_add(1);
        session.incoming_window = session.incoming_window.saturating_sub(1);
        let refill_session = session.incoming_window < SESSION_WINDOW / 2;
        if refill_session {
            session.incoming_window = SESSION_WINDOW;
        }
        let handle = transfer.handle;
        let Some(link) = session.links.get_mut(&handle) else {
            return Err(protocol(format!(
                "transfer on unknown link handle {handle}"
            )));
        };
        let (pending, credit, delivery_count, settle_late) = match link {
            Link::Ingest {
                pending,
                credit,
                delivery_count,
                settle_late,
                ..
            }
            | Link::Requests {
                pending,
                credit,
                delivery_count,
                settle_late,
                ..
            } => (pending, credit, delivery_count, *settle_late),
            _ => return Err(protocol("transfer on a link we send on")),
        };
        let p = pending.get_or_insert_with(|| Pending {
            delivery_id: transfer.delivery_id,
            settled: transfer.settled.unwrap_or(false),
            format: transfer.message_format.unwrap_or(0),
            bytes: Vec::new(),
            oversized: false,
        });
        if transfer.aborted {
            *pending = None;
            return Ok(());
        }
        // An oversized delivery is read to its end (its frames keep coming) but not kept.
        if p.bytes.len() + payload.len() > MAX_MESSAGE as usize {
            p.oversized = true;
            p.bytes = Vec::new();
        }
        if !p.oversized {
            p.bytes.extend_from_slice(&payload);
        }
        if transfer.more {
            return Ok(());
        }
        let done = pending.take().expect("just inserted");
        *credit = credit.saturating_sub(1);
        *delivery_count = delivery_count.wrapping_add(1);
        let top_up = (*credit < SENDER_CREDIT / 2).then_some(*delivery_count);
        if top_up.is_some() {
            *credit = SENDER_CREDIT;
        }

        let state = if done.oversized {
            DeliveryState::Rejected(Some(AmqpError::new(
                condition::MESSAGE_SIZE_EXCEEDED,
                format!("the message is larger than the maximum of {MAX_MESSAGE} bytes"),
            )))
        } else {
            match self.sessions[&channel].links.get(&handle) {
                Some(Link::Ingest { hub, partition, .. }) => {
                    let (hub, partition) = (hub.clone(), partition.clone());
                    ingest(&hub, partition.as_ref(), &done)
                }
                Some(Link::Requests { node, .. }) => {
                    let node = *node;
                    self.request(channel, node, &done.bytes).await
                }
                _ => DeliveryState::Accepted,
            }
        };
        if !done.settled {
            if let Some(id) = done.delivery_id {
                self.settle(channel, id, state, settle_late).await;
            }
        }
        if let Some(delivery_count) = top_up {
            self.send_link_flow(channel, handle, delivery_count, SENDER_CREDIT)
                .await;
        } else if refill_session {
            // A session-level flow (no handle) to reopen our incoming window.
            let session = &self.sessions[&channel];
            let next_outgoing_id = session.out.state.lock().await.next_outgoing_id;
            let flow = Flow {
                next_incoming_id: Some(session.next_incoming_id),
                incoming_window: session.incoming_window,
                next_outgoing_id,
                outgoing_window: SESSION_WINDOW,
                ..Flow::default()
            };
            self.send(channel, flow.to_value()).await;
        }
        Ok(())
    }

    /// Tell the client the outcome of its delivery `id`.
    ///
    /// `late`: the client's AMQP stack (fe2o3-amqp, under the Rust SDK) registers a delivery as
    /// unsettled only after handing its transfer to the socket; an outcome that arrives before
    /// that is dropped and the send waits forever. On loopback we are that fast. So such clients
    /// get the outcome twice: unsettled now (it settles the delivery if it is registered; the
    /// client keeps the id) and settled a moment later (it settles the delivery otherwise).
    async fn settle(&mut self, channel: u16, id: u32, state: DeliveryState, late: bool) {
        let disposition = |settled, state| Disposition {
            role: Role::Receiver,
            first: id,
            last: None,
            settled,
            state: Some(state),
            batchable: false,
        };
        if late {
            self.send(channel, disposition(false, state.clone()).to_value())
                .await;
            self.hold(channel, disposition(true, state).to_value(), SETTLE_AGAIN);
        } else {
            self.send(channel, disposition(true, state).to_value())
                .await;
        }
    }

    /// Answer a `$cbs` or `$management` request on the matching reply link; the outcome for
    /// the request's delivery.
    async fn request(&mut self, channel: u16, node: Node, bytes: &[u8]) -> DeliveryState {
        let request = match Message::decode(bytes) {
            Ok(m) => m,
            Err(err) => {
                tracing::debug!(error = %err, "Undecodable request");
                return DeliveryState::Accepted;
            }
        };
        let (status, description, body) = match node {
            Node::Cbs => {
                let (s, d) = self.put_token(&request);
                (s, d, Value::Null)
            }
            Node::Management => self.management(&request),
        };
        let mut response = Message::with_value(body);
        if let Some(id) = request.property(property::MESSAGE_ID) {
            response.set_property(property::CORRELATION_ID, id.clone());
        }
        if let Some(reply_to) = request.property(property::REPLY_TO) {
            response.set_property(property::TO, reply_to.clone());
        }
        response.application_properties = vec![
            (Value::string("status-code"), Value::Int(status)),
            (
                Value::string("status-description"),
                Value::string(description.as_str()),
            ),
            (Value::string("statusCode"), Value::Int(status)),
            (
                Value::string("statusDescription"),
                Value::string(description),
            ),
        ];
        let reply_to = request
            .property(property::REPLY_TO)
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(session) = self.sessions.get_mut(&channel) else {
            return DeliveryState::Accepted;
        };
        let reply_handle = session
            .links
            .iter()
            .filter_map(|(handle, link)| match link {
                Link::Replies {
                    node: n, address, ..
                } if *n == node => Some((*handle, address.is_some() && *address == reply_to)),
                _ => None,
            })
            .max_by_key(|(_, matches)| *matches)
            .map(|(handle, _)| handle);
        let Some(handle) = reply_handle else {
            tracing::debug!(?node, "Request without a reply link");
            return DeliveryState::Accepted;
        };
        if let Some(Link::Replies { queue, .. }) = session.links.get_mut(&handle) {
            // A client that sends requests but never gives the reply link credit would grow
            // the queue without bound.
            if queue.len() >= MAX_QUEUED_REPLIES {
                tracing::debug!(?node, "Reply queue full; request refused");
                return DeliveryState::Rejected(Some(AmqpError::new(
                    condition::RESOURCE_LIMIT,
                    format!(
                        "{MAX_QUEUED_REPLIES} responses already wait for credit on the reply \
                         link"
                    ),
                )));
            }
            queue.push_back(response.to_bytes());
        }
        self.flush_replies(channel, handle).await;
        DeliveryState::Accepted
    }

    /// Send queued responses on a reply link as far as its credit allows.
    async fn flush_replies(&mut self, channel: u16, handle: u32) {
        let Some(session) = self.sessions.get_mut(&channel) else {
            return;
        };
        let out = session.out.clone();
        let Some(Link::Replies { flow, queue, .. }) = session.links.get_mut(&handle) else {
            return;
        };
        let mut ready = Vec::new();
        {
            let mut st = flow.state.lock().unwrap_or_else(|e| e.into_inner());
            while st.credit > 0 {
                let Some(bytes) = queue.pop_front() else {
                    break;
                };
                st.credit -= 1;
                st.delivery_count = st.delivery_count.wrapping_add(1);
                ready.push(bytes);
            }
        }
        send_deliveries(&out, &self.out, handle, &ready, true, self.peer_max_frame).await;
    }

    fn put_token(&mut self, request: &Message) -> (i32, String) {
        let operation = request
            .application_property("operation")
            .and_then(Value::as_str);
        if operation != Some("put-token") {
            return (400, format!("unsupported $cbs operation {operation:?}"));
        }
        let audience = request
            .application_property("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let token = match request.body_value() {
            Some(Value::String(s)) => Some(s.clone()),
            _ => request
                .data_sections()
                .next()
                .and_then(|d| String::from_utf8(d.to_vec()).ok()),
        };
        let Some(token) = token else {
            return (400, "the put-token request carries no token".into());
        };
        // The Rust SDK labels every token "jwt"; what counts is what the token is.
        if !token.starts_with("SharedAccessSignature ") {
            return (
                401,
                "only SAS tokens (SharedAccessSignature sr=..&sig=..&se=..&skn=..) are accepted; \
                 Microsoft Entra tokens cannot be checked by this endpoint"
                    .into(),
            );
        }
        let now = (now_ms() / 1000) as u64;
        match sas::validate(&token, self.ns.policies(), now)
            .and_then(|valid| valid.covers(&audience).map(|()| valid))
        {
            Ok(valid) => {
                tracing::debug!(%audience, resource = %valid.resource, "Token accepted");
                self.keep_token(valid);
                (202, "Accepted".into())
            }
            Err(err) => {
                tracing::debug!(%audience, error = %err, "Token refused");
                (401, format!("Unauthorized: {err}"))
            }
        }
    }

    fn management(&mut self, request: &Message) -> (i32, String, Value) {
        let prop = |k: &str| {
            request
                .application_property(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if prop("operation").as_deref() != Some("READ") {
            return (
                400,
                format!("unsupported operation {:?}", prop("operation")),
                Value::Null,
            );
        }
        let name = prop("name").unwrap_or_default();
        // Requests may carry their own token instead of a $cbs one.
        if let Some(token) = prop("security_token") {
            let now = (now_ms() / 1000) as u64;
            if let Ok(valid) = sas::validate(&token, self.ns.policies(), now) {
                self.keep_token(valid);
            }
        }
        if let Err(err) = self.authorized(&name) {
            return (401, err.description.unwrap_or_default(), Value::Null);
        }
        let Some(hub) = self.ns.hub(&name).cloned() else {
            return (
                404,
                format!("event hub `{name}` does not exist"),
                Value::Null,
            );
        };
        let entry = |k: &str, v: Value| (Value::string(k), v);
        match prop("type").as_deref() {
            Some("com.microsoft:eventhub") => (
                200,
                "OK".into(),
                Value::Map(vec![
                    entry("name", Value::string(hub.name.as_str())),
                    entry("type", Value::string("com.microsoft:eventhub")),
                    entry("created_at", Value::Timestamp(hub.created_at_ms)),
                    entry("partition_count", Value::Int(hub.partitions.len() as i32)),
                    entry(
                        "partition_ids",
                        Value::Array(
                            hub.partitions
                                .iter()
                                .map(|p| Value::string(p.id.as_str()))
                                .collect(),
                        ),
                    ),
                ]),
            ),
            Some("com.microsoft:partition") => {
                let id = prop("partition").unwrap_or_default();
                let Some(partition) = hub.partition(&id) else {
                    return (
                        404,
                        format!("event hub `{name}` has no partition `{id}`"),
                        Value::Null,
                    );
                };
                let info = partition.info();
                (
                    200,
                    "OK".into(),
                    Value::Map(vec![
                        entry("name", Value::string(hub.name.as_str())),
                        entry("type", Value::string("com.microsoft:partition")),
                        entry("partition", Value::string(id.as_str())),
                        entry(
                            "begin_sequence_number",
                            Value::Long(info.begin_sequence_number),
                        ),
                        entry(
                            "last_enqueued_sequence_number",
                            Value::Long(info.last_sequence_number),
                        ),
                        entry(
                            "last_enqueued_offset",
                            Value::string(info.last_offset.to_string()),
                        ),
                        entry(
                            "last_enqueued_time_utc",
                            Value::Timestamp(info.last_enqueued_time_ms),
                        ),
                        entry("is_partition_empty", Value::Bool(info.is_empty)),
                        entry("last_enqueued_sequence_number_epoch", Value::Long(0)),
                    ]),
                )
            }
            other => (
                400,
                format!("unsupported management type {other:?}"),
                Value::Null,
            ),
        }
    }

    async fn on_detach(&mut self, channel: u16, body: &Value) -> Result<(), ConnectionError> {
        let detach = Detach::from_value(body).ok_or_else(|| protocol("malformed detach"))?;
        let mut hold = false;
        if let Some(session) = self.sessions.get_mut(&channel) {
            if let Some(link) = session.links.remove(&detach.handle) {
                hold = matches!(link, Link::Requests { .. } | Link::Replies { .. });
                drop_link(link);
            }
        }
        if hold {
            // The Rust SDK drops its $cbs client without waiting for our detach and ends the
            // session right after; a detach reply that arrives for the dropped link makes its
            // AMQP stack fail the whole connection. So hold the reply briefly: if the session
            // ends meanwhile it is not needed; a client that waits for it still gets it.
            let reply = Detach {
                handle: detach.handle,
                closed: detach.closed,
                error: None,
            };
            self.hold(channel, reply.to_value(), DETACH_HOLD);
            return Ok(());
        }
        let reply = Detach {
            handle: detach.handle,
            closed: detach.closed,
            error: None,
        };
        self.send(channel, reply.to_value()).await;
        Ok(())
    }

    fn hold(&mut self, channel: u16, body: Value, delay: Duration) {
        let at = tokio::time::Instant::now() + delay;
        self.held.push(Held { channel, body, at });
    }

    async fn release_held(&mut self) {
        let now = tokio::time::Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.at <= now);
        self.held = later;
        for held in due {
            self.send(held.channel, held.body).await;
        }
    }

    /// Another connection's receiver with a higher epoch took our partition.
    async fn kicked(&mut self, kick: Kick) {
        let found = self.sessions.iter_mut().find_map(|(channel, session)| {
            let handle = session.links.iter().find_map(|(h, l)| match l {
                Link::Deliver { reader_id, .. } if *reader_id == kick.reader_id => Some(*h),
                _ => None,
            })?;
            Some((*channel, handle, session.links.remove(&handle)?))
        });
        if let Some((channel, handle, link)) = found {
            if let Link::Deliver { pump, .. } = link {
                pump.abort(); // already removed from the partition's readers
            }
            let detach = Detach {
                handle,
                closed: true,
                error: Some(AmqpError::new(condition::STOLEN, kick.reason)),
            };
            self.send(channel, detach.to_value()).await;
        }
    }

    fn drop_session(&self, session: Session) {
        for (_, link) in session.links {
            drop_link(link);
        }
    }

    fn teardown(&mut self) {
        for (_, session) in std::mem::take(&mut self.sessions) {
            self.drop_session(session);
        }
    }
}

fn drop_link(link: Link) {
    if let Link::Deliver {
        reader_id,
        group,
        partition,
        pump,
        ..
    } = link
    {
        pump.abort();
        partition.remove_reader(&group, reader_id);
    }
}

fn node(name: &str) -> Node {
    if name == "$cbs" {
        Node::Cbs
    } else {
        Node::Management
    }
}

fn flip(role: Role) -> Role {
    match role {
        Role::Sender => Role::Receiver,
        Role::Receiver => Role::Sender,
    }
}

/// Store what a sender link delivered: one event, or a batch (format 0x80013700) whose data
/// sections are events. Returns the outcome for the sender.
fn ingest(hub: &EventHub, partition: Option<&Arc<Partition>>, delivery: &Pending) -> DeliveryState {
    let reject = |condition: &str, msg: String| {
        tracing::debug!(hub = %hub.name, %condition, %msg, "Delivery rejected");
        DeliveryState::Rejected(Some(AmqpError::new(condition, msg)))
    };
    let outer = match Message::decode(&delivery.bytes) {
        Ok(m) => m,
        Err(err) => {
            return reject(
                condition::DECODE_ERROR,
                format!("undecodable message: {err}"),
            )
        }
    };
    let events = if delivery.format == BATCH_FORMAT {
        let mut events = Vec::new();
        for (i, data) in outer.data_sections().enumerate() {
            match Message::decode(data) {
                Ok(mut m) => {
                    // Events of a batch share the batch's partition key.
                    if m.partition_key().is_none() {
                        if let Some(key) = outer.partition_key() {
                            m.set_annotation(
                                crate::amqp::message::annotation::PARTITION_KEY,
                                Value::string(key),
                            );
                        }
                    }
                    events.push(m)
                }
                Err(err) => {
                    return reject(
                        condition::DECODE_ERROR,
                        format!("event {i} of the batch is undecodable: {err}"),
                    )
                }
            }
        }
        events
    } else {
        vec![outer]
    };
    if events.is_empty() {
        return DeliveryState::Accepted;
    }
    let target = match partition {
        Some(p) => p,
        None => hub.route(events[0].partition_key()),
    };
    match target.append(&events) {
        Ok(seqs) => {
            tracing::trace!(hub = %hub.name, partition = %target.id, ?seqs, "Stored");
            DeliveryState::Accepted
        }
        Err(err) => {
            tracing::error!(hub = %hub.name, partition = %target.id, error = %err, "Append failed");
            reject(
                condition::INTERNAL_ERROR,
                format!("the event could not be stored: {err}"),
            )
        }
    }
}

/// Send messages as transfer frames (several per message when a frame cannot hold one), in
/// delivery-id order for the session, with as few socket writes as the session window allows.
async fn send_deliveries(
    session: &SessionOut,
    out: &Out,
    handle: u32,
    messages: &[Vec<u8>],
    settled: bool,
    max_frame: u32,
) {
    // Room for the frame header and a transfer performative.
    let chunk = (max_frame as usize).saturating_sub(8 + 96).max(256);
    let mut bytes = Vec::with_capacity(messages.iter().map(|m| m.len() + 64).sum());
    let mut next = 0;
    while next < messages.len() {
        let notified = session.window.notified();
        let mut st = session.state.lock().await;
        while let Some(message) = messages.get(next) {
            let frames = message.len().div_ceil(chunk).max(1) as u32;
            // Wait for room for the whole message, unless the window could never hold it.
            let fits =
                st.remote_incoming_window >= frames || st.remote_incoming_window > 0 && frames > 1;
            if !fits {
                break;
            }
            let delivery_id = st.next_delivery_id;
            st.next_delivery_id = st.next_delivery_id.wrapping_add(1);
            for (i, part) in message.chunks(chunk).enumerate() {
                let first = i == 0;
                let transfer = Transfer {
                    handle,
                    delivery_id: first.then_some(delivery_id),
                    delivery_tag: first.then(|| delivery_id.to_be_bytes().to_vec()),
                    message_format: first.then_some(0),
                    settled: first.then_some(settled),
                    more: (i as u32) + 1 < frames,
                    ..Transfer::default()
                };
                Frame {
                    kind: FrameType::Amqp,
                    channel: session.channel,
                    body: Some(transfer.to_value()),
                    payload: part.to_vec(),
                }
                .encode(&mut bytes);
                st.next_outgoing_id = st.next_outgoing_id.wrapping_add(1);
                st.remote_incoming_window = st.remote_incoming_window.saturating_sub(1);
            }
            next += 1;
        }
        drop(st);
        tracing::trace!(
            channel = session.channel,
            handle,
            sent = next,
            "Transfers out"
        );
        if !bytes.is_empty() {
            let _ = out.send(std::mem::take(&mut bytes)).await;
        }
        if next < messages.len() {
            notified.await;
        }
    }
}

struct PumpArgs {
    partition: Arc<Partition>,
    flow: Arc<LinkFlow>,
    session: Arc<SessionOut>,
    out: Out,
    handle: u32,
    next_sequence: i64,
    max_frame: u32,
    settled: bool,
    metrics: bool,
}

/// Deliver a partition's events on one receiver link as credit allows.
async fn pump(args: PumpArgs) {
    let PumpArgs {
        partition,
        flow,
        session,
        out,
        handle,
        mut next_sequence,
        max_frame,
        settled,
        metrics,
    } = args;
    let mut watch = partition.watch();
    let mut wires: Vec<Vec<u8>> = Vec::new();
    loop {
        let notified = flow.changed.notified();
        let (credit, drain) = {
            let st = flow.state.lock().unwrap_or_else(|e| e.into_inner());
            (st.credit, st.drain)
        };
        if credit == 0 {
            notified.await;
            continue;
        }
        let events = match partition.read(next_sequence, (credit as usize).min(PUMP_BATCH), 4 << 20)
        {
            Ok(events) => events,
            Err(err) => {
                tracing::error!(partition = %partition.id, error = %err, "Read failed");
                return;
            }
        };
        if events.is_empty() {
            if drain {
                // Nothing to send: use up the credit and tell the receiver.
                let (delivery_count, used) = {
                    let mut st = flow.state.lock().unwrap_or_else(|e| e.into_inner());
                    let used = st.credit;
                    st.delivery_count = st.delivery_count.wrapping_add(used);
                    st.credit = 0;
                    st.drain = false;
                    (st.delivery_count, used)
                };
                let st = session.state.lock().await;
                let reply = Flow {
                    next_incoming_id: None,
                    incoming_window: SESSION_WINDOW,
                    next_outgoing_id: st.next_outgoing_id,
                    outgoing_window: SESSION_WINDOW,
                    handle: Some(handle),
                    delivery_count: Some(delivery_count),
                    link_credit: Some(0),
                    drain: true,
                    ..Flow::default()
                };
                let mut bytes = Vec::new();
                Frame::amqp(session.channel, reply.to_value()).encode(&mut bytes);
                let _ = out.send(bytes).await;
                tracing::trace!(used, "Drained");
                continue;
            }
            tokio::select! {
                _ = watch.changed() => {}
                _ = notified => {}
            }
            continue;
        }
        let info = metrics.then(|| partition.info());
        let mut metrics_section = Vec::new();
        if let Some(info) = &info {
            runtime_metrics(info, &mut metrics_section);
        }
        // Encode what the credit allows, take credit for what is sent, write it at once.
        let room = {
            let st = flow.state.lock().unwrap_or_else(|e| e.into_inner());
            (st.credit as usize).min(events.len())
        };
        wires.clear();
        for event in &events[..room] {
            let ann = stored::Annotations {
                sequence_number: event.sequence_number,
                offset: event.offset,
                enqueued_time_ms: event.enqueued_time_ms,
                partition_key: event.partition_key.as_deref(),
            };
            let mut wire = Vec::with_capacity(event.payload.len() + 128);
            next_sequence = event.sequence_number + 1;
            if stored::deliver(&event.payload, &ann, &metrics_section, &mut wire).is_none() {
                tracing::error!(partition = %partition.id, sequence = event.sequence_number, "Stored event is corrupt; skipping it");
                continue;
            }
            wires.push(wire);
        }
        {
            let mut st = flow.state.lock().unwrap_or_else(|e| e.into_inner());
            st.credit = st.credit.saturating_sub(wires.len() as u32);
            st.delivery_count = st.delivery_count.wrapping_add(wires.len() as u32);
        }
        send_deliveries(&session, &out, handle, &wires, settled, max_frame).await;
    }
}

/// Delivery annotations with the partition's last enqueued event, for receivers that asked for
/// runtime metrics.
fn runtime_metrics(info: &super::namespace::PartitionInfo, out: &mut Vec<u8>) {
    let entry = |k: &str, v: Value| (Value::symbol(k), v);
    Value::Described(
        Box::new(Value::Ulong(
            crate::amqp::message::section::DELIVERY_ANNOTATIONS,
        )),
        Box::new(Value::Map(vec![
            entry(
                "last_enqueued_sequence_number",
                Value::Long(info.last_sequence_number),
            ),
            entry(
                "last_enqueued_offset",
                Value::string(info.last_offset.to_string()),
            ),
            entry(
                "last_enqueued_time_utc",
                Value::Timestamp(info.last_enqueued_time_ms),
            ),
            entry(
                "runtime_info_retrieval_time_utc",
                Value::Timestamp(now_ms()),
            ),
        ])),
    )
    .encode(out);
}
