//! Transfers from clients: multi-frame deliveries, events stored from senders, outcomes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::attach::*;
use super::connection::*;
use super::namespace::{EventHub, Partition};
use super::session::*;
use crate::amqp::message::{Message, BATCH_FORMAT};
use crate::amqp::performative::{
    condition, AmqpError, DeliveryState, Disposition, Flow, Role, Transfer,
};
use crate::amqp::Value;

/// When the settled outcome follows the unsettled one for clients that settle late.
pub(super) const SETTLE_AGAIN: Duration = Duration::from_millis(20);

/// A multi-frame delivery being received.
pub(super) struct Pending {
    pub(super) delivery_id: Option<u32>,
    pub(super) settled: bool,
    pub(super) format: u32,
    pub(super) bytes: Vec<u8>,
    /// Why the delivery is refused (over `limits.max_message_bytes` or over
    /// `limits.max_incomplete_bytes_per_connection`): its bytes are dropped, the rest of its
    /// frames is read and dropped too, and the delivery is rejected with this error.
    pub(super) refused: Option<AmqpError>,
    /// `bytes` counted in the connection's incomplete bytes, until the delivery is done or
    /// its link goes.
    pub(super) charge: Charge,
}

/// Bytes counted against `limits.max_incomplete_bytes_per_connection`, given back when
/// dropped, whichever way the delivery ends (completed, aborted, link or session gone).
pub(super) struct Charge {
    counter: Arc<AtomicU64>,
    bytes: u64,
}

impl Charge {
    /// Count `more` bytes if the connection stays within `max`; `false` otherwise.
    fn try_add(&mut self, more: u64, max: u64) -> bool {
        let ok = self
            .counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n + more <= max).then_some(n + more)
            })
            .is_ok();
        if ok {
            self.bytes += more;
        }
        ok
    }

    fn clear(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::AcqRel);
        self.bytes = 0;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Connection {
    pub(super) async fn on_transfer(
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
            refused: None,
            charge: Charge {
                counter: self.incomplete.clone(),
                bytes: 0,
            },
        });
        if transfer.aborted {
            *pending = None;
            return Ok(());
        }
        // A refused delivery is read to its end (its frames keep coming) but not kept.
        let limits = &self.ns.limits;
        if p.refused.is_none() {
            let size = (p.bytes.len() + payload.len()) as u64;
            if size > limits.max_message_bytes {
                p.refused = Some(AmqpError::new(
                    condition::MESSAGE_SIZE_EXCEEDED,
                    format!(
                        "the message is larger than the maximum of {} bytes \
                         (limits.max_message_bytes)",
                        limits.max_message_bytes
                    ),
                ));
            } else if !p.charge.try_add(
                payload.len() as u64,
                limits.max_incomplete_bytes_per_connection,
            ) {
                p.refused = Some(AmqpError::new(
                    condition::RESOURCE_LIMIT,
                    format!(
                        "deliveries still arriving on this connection would hold more than {} \
                         bytes (limits.max_incomplete_bytes_per_connection)",
                        limits.max_incomplete_bytes_per_connection
                    ),
                ));
            }
            if p.refused.is_some() {
                p.bytes = Vec::new();
                p.charge.clear();
            } else {
                p.bytes.extend_from_slice(&payload);
            }
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

        let state = if let Some(error) = done.refused.clone() {
            tracing::debug!(channel, handle, condition = %error.condition, "Delivery refused");
            DeliveryState::Rejected(Some(error))
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
    pub(super) async fn settle(&mut self, channel: u16, id: u32, state: DeliveryState, late: bool) {
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
}

/// Store what a sender link delivered: one event, or a batch (format 0x80013700) whose data
/// sections are events. Returns the outcome for the sender.
pub(super) fn ingest(
    hub: &EventHub,
    partition: Option<&Arc<Partition>>,
    delivery: &Pending,
) -> DeliveryState {
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
