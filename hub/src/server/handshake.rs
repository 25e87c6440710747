//! The start of a connection: protocol headers, SASL, the open, and the idle timeout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use super::connection::*;
use super::limits::PRE_OPEN_MAX_FRAME;
use crate::amqp::frame::{Frame, AMQP_HEADER, SASL_HEADER};
use crate::amqp::performative::{self as perf, Open};
use crate::amqp::Value;

pub(super) async fn read_frame(
    rd: &mut OwnedReadHalf,
    buf: &mut Vec<u8>,
    max_frame: u32,
) -> Result<Frame, ConnectionError> {
    loop {
        match Frame::peek_size(buf, max_frame).map_err(|e| protocol(e.to_string()))? {
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

/// Exchange protocol headers (and SASL, when the client starts with it); what the client sent
/// after its AMQP header is left in `buf`.
pub(super) async fn handshake(
    mut stream: TcpStream,
    buf: &mut Vec<u8>,
) -> Result<TcpStream, ConnectionError> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    if header == SASL_HEADER {
        stream.write_all(&SASL_HEADER).await?;
        let mut out = Vec::new();
        Frame::sasl(perf::sasl_mechanisms(&["ANONYMOUS", "MSSBCBS", "PLAIN"])).encode(&mut out);
        stream.write_all(&out).await?;
        let (mut rd, mut wr) = stream.into_split();
        // SASL frames are at most 512 bytes (AMQP 1.0 §5.3.1).
        let init = read_frame(&mut rd, buf, PRE_OPEN_MAX_FRAME).await?;
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
    Ok(stream)
}

impl Connection {
    pub(super) async fn on_open(&mut self, body: &Value) -> Result<(), ConnectionError> {
        let open = Open::from_value(body).ok_or_else(|| protocol("malformed open"))?;
        self.peer_max_frame = open
            .max_frame_size
            .clamp(512, self.ns.limits.max_frame_bytes);
        self.heartbeat = open
            .idle_time_out
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis((ms / 2).max(100) as u64));
        let reply = self.our_open();
        self.opened = true;
        self.send(0, reply.to_value()).await;
        Ok(())
    }

    /// The open we answer with, announcing our limits.
    pub(super) fn our_open(&self) -> Open {
        Open {
            container_id: format!("hubwasm-{}", self.ns.name),
            hostname: None,
            max_frame_size: self.ns.limits.max_frame_bytes,
            channel_max: self.ns.limits.channel_max(),
            idle_time_out: Some(self.ns.limits.idle_timeout_ms),
            offered_capabilities: Vec::new(),
            desired_capabilities: Vec::new(),
            properties: Vec::new(),
        }
    }
}
