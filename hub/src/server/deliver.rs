//! Sending to clients: transfers in session order, and the pump feeding each receiver link.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};

use super::connection::*;
use super::namespace::{now_ms, Kick, Partition};
use super::session::*;
use super::stored;
use crate::amqp::frame::{Frame, FrameType};
use crate::amqp::performative::{condition, Flow, Transfer};
use crate::amqp::Value;

/// Events read from the log per pump round.
pub(super) const PUMP_BATCH: usize = 256;

/// Credit of a link on which we send.
pub(super) struct LinkFlow {
    pub(super) state: Mutex<FlowState>,
    pub(super) changed: Notify,
}

#[derive(Default)]
pub(super) struct FlowState {
    pub(super) credit: u32,
    pub(super) delivery_count: u32,
    pub(super) drain: bool,
}

/// Send messages as transfer frames (several per message when a frame cannot hold one), in
/// delivery-id order for the session, with as few socket writes as the session window allows.
/// With `track`, the answer completes once all of it is written (see [`Out::send_tracked`]).
pub(super) async fn send_deliveries(
    session: &SessionOut,
    out: &Out,
    handle: u32,
    messages: &[Vec<u8>],
    settled: bool,
    max_frame: u32,
    track: bool,
) -> Option<tokio::sync::oneshot::Receiver<()>> {
    // Room for the frame header and a transfer performative.
    let chunk = (max_frame as usize).saturating_sub(8 + 96).max(256);
    let mut bytes = Vec::with_capacity(messages.iter().map(|m| m.len() + 64).sum());
    let mut next = 0;
    let mut written = None;
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
            let bytes = std::mem::take(&mut bytes);
            if track {
                // In order: the last part written means all of it is.
                written = Some(out.send_tracked(bytes).await);
            } else {
                out.send(bytes).await;
            }
        }
        if next < messages.len() {
            notified.await;
        }
    }
    written
}

pub(super) struct PumpArgs {
    pub(super) partition: Arc<Partition>,
    pub(super) flow: Arc<LinkFlow>,
    pub(super) session: Arc<SessionOut>,
    pub(super) out: Out,
    pub(super) handle: u32,
    pub(super) next_sequence: i64,
    pub(super) max_frame: u32,
    pub(super) settled: bool,
    pub(super) metrics: bool,
    /// Tells the connection when the pump fails (see [`PumpFailure`]).
    pub(super) failure: PumpFailure,
}

/// How a receiver's pump tells its connection that it failed (a read error, or a panic): the
/// connection then detaches the link with `amqp:internal-error` and gives its place among the
/// partition's readers back, instead of keeping a receiver that will never deliver again.
/// A pump stopped by its connection (detach, end, close) reports nothing.
pub(super) struct PumpFailure {
    pub(super) reader_id: u64,
    pub(super) partition: String,
    pub(super) kick: mpsc::UnboundedSender<Kick>,
}

impl PumpFailure {
    pub(super) fn report(&self) {
        let _ = self.kick.send(Kick {
            reader_id: self.reader_id,
            condition: condition::INTERNAL_ERROR,
            // What went wrong (file names included) is in the endpoint's log, not for clients.
            reason: format!(
                "the endpoint could not read partition {}; the receiver must attach again \
                 (the endpoint's log says why)",
                self.partition
            ),
        });
    }
}

impl Drop for PumpFailure {
    fn drop(&mut self) {
        // Dropped while unwinding: the pump panicked. (Stopped by its connection, it is
        // dropped without a panic and says nothing.)
        if std::thread::panicking() {
            self.report();
        }
    }
}

/// Deliver a partition's events on one receiver link as credit allows.
pub(super) async fn pump(args: PumpArgs) {
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
        failure,
    } = args;
    let mut watch = partition.watch();
    let mut wires: Vec<Vec<u8>> = Vec::new();
    // The last batch handed to the writer: the next one goes only once it is written, so a
    // client that does not read makes us hold one batch, not the partition.
    let mut in_flight: Option<tokio::sync::oneshot::Receiver<()>> = None;
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
                tracing::error!(partition = %partition.id, error = %err, "Read failed; the receiver is detached");
                failure.report();
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
                out.send(bytes).await;
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
        if let Some(previous) = in_flight.take() {
            if previous.await.is_err() {
                return; // the writer is gone: the connection is ending
            }
        }
        in_flight = send_deliveries(&session, &out, handle, &wires, settled, max_frame, true).await;
    }
}

/// Delivery annotations with the partition's last enqueued event, for receivers that asked for
/// runtime metrics.
pub(super) fn runtime_metrics(info: &super::namespace::PartitionInfo, out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pump_that_panics_is_reported_and_one_its_connection_stops_is_not() {
        let (kick, mut kicks) = mpsc::unbounded_channel();
        let failure = |reader_id| PumpFailure {
            reader_id,
            partition: "3".into(),
            kick: kick.clone(),
        };
        let held = failure(1);
        let panicking = tokio::spawn(async move {
            let _held = held;
            panic!("a pump bug");
        });
        assert!(panicking.await.unwrap_err().is_panic());
        let reported = kicks.try_recv().expect("the panic is reported");
        assert_eq!(reported.reader_id, 1);
        assert_eq!(reported.condition, condition::INTERNAL_ERROR);
        assert!(
            reported.reason.contains("partition 3"),
            "{}",
            reported.reason
        );

        let held = failure(2);
        let stopped = tokio::spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        stopped.abort();
        assert!(stopped.await.unwrap_err().is_cancelled());
        assert!(kicks.try_recv().is_err(), "a stopped pump is not a failure");
    }
}
