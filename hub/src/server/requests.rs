//! Request/response links of `$cbs` and `$management`: requests in, replies queued for credit.

use super::connection::*;
use super::deliver::*;
use crate::amqp::message::{property, Message};
use crate::amqp::performative::{condition, AmqpError, DeliveryState};
use crate::amqp::Value;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Node {
    Cbs,
    Management,
}

impl Connection {
    /// Answer a `$cbs` or `$management` request on the matching reply link; the outcome for
    /// the request's delivery.
    pub(super) async fn request(
        &mut self,
        channel: u16,
        node: Node,
        bytes: &[u8],
    ) -> DeliveryState {
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
            let max = self.ns.limits.max_queued_replies;
            if queue.len() >= max {
                tracing::debug!(?node, "Reply queue full; request refused");
                return DeliveryState::Rejected(Some(AmqpError::new(
                    condition::RESOURCE_LIMIT,
                    format!(
                        "{max} responses already wait for credit on the reply link \
                         (limits.max_queued_replies)"
                    ),
                )));
            }
            queue.push_back(response.to_bytes());
        }
        self.flush_replies(channel, handle).await;
        DeliveryState::Accepted
    }

    /// Send queued responses on a reply link as far as its credit allows.
    pub(super) async fn flush_replies(&mut self, channel: u16, handle: u32) {
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
        send_deliveries(
            &out,
            &self.out,
            handle,
            &ready,
            true,
            self.peer_max_frame,
            false,
        )
        .await;
    }
}
