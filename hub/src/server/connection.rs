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
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::deliver::*;
use super::handshake::*;
use super::ingest::*;
use super::namespace::{EventHub, Kick, Namespace, Partition};
use super::requests::*;
use super::session::*;
use crate::amqp::frame::{Frame, FrameType};
use crate::amqp::performative::{self as perf, code, condition, AmqpError, Detach};
use crate::amqp::Value;
use crate::sas::ValidToken;

pub(super) type Out = mpsc::Sender<Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
}

pub(super) fn protocol(msg: impl Into<String>) -> ConnectionError {
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

pub(super) async fn run(
    stream: TcpStream,
    ns: Arc<Namespace>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let stream = handshake(stream, &mut buf).await?;

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
    let max_frame = conn.ns.limits.max_frame_bytes;
    let idle = Duration::from_millis(2 * conn.ns.limits.idle_timeout_ms as u64);
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
            frame = tokio::time::timeout(idle, read_frame(&mut rd, &mut buf, max_frame)) => {
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

impl Connection {
    pub(super) async fn send_raw(&self, frame: Frame) {
        tracing::trace!(channel = frame.channel, performative = ?frame.body.as_ref().and_then(crate::amqp::Value::descriptor_code), "Frame out");
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        let _ = self.out.send(bytes).await;
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

    /// Another connection's receiver with a higher epoch took our partition.
    pub(super) async fn kicked(&mut self, kick: Kick) {
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

    pub(super) fn teardown(&mut self) {
        for (_, session) in std::mem::take(&mut self.sessions) {
            self.drop_session(session);
        }
    }
}
