//! Sessions: begin and end, channels, session windows and flow.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use super::attach::*;
use super::connection::*;
use crate::amqp::performative::{self as perf, Begin, Flow};
use crate::amqp::Value;

/// Our session incoming window, topped up when half is used.
pub(super) const SESSION_WINDOW: u32 = 5000;

/// The outgoing half of a session, shared with its receiver pumps.
pub(super) struct SessionOut {
    pub(super) channel: u16,
    pub(super) state: tokio::sync::Mutex<OutState>,
    pub(super) window: Notify,
}

pub(super) struct OutState {
    pub(super) next_outgoing_id: u32,
    pub(super) next_delivery_id: u32,
    pub(super) remote_incoming_window: u32,
}

pub(super) struct Session {
    pub(super) out: Arc<SessionOut>,
    pub(super) links: HashMap<u32, Link>,
    pub(super) next_incoming_id: u32,
    pub(super) incoming_window: u32,
}

impl Connection {
    pub(super) async fn on_begin(
        &mut self,
        channel: u16,
        body: &Value,
    ) -> Result<(), ConnectionError> {
        let begin = Begin::from_value(body).ok_or_else(|| protocol("malformed begin"))?;
        // Sessions are kept per channel: keep to the channel-max we announced, so a client
        // cannot grow them without bound.
        let channel_max = self.ns.limits.channel_max();
        if channel > channel_max {
            return Err(over_limit(format!(
                "begin on channel {channel}, above the channel-max {channel_max}: at most {} \
                 sessions per connection (limits.max_sessions_per_connection)",
                self.ns.limits.max_sessions_per_connection
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
            handle_max: self.ns.limits.handle_max(),
            properties: Vec::new(),
        };
        self.send(channel, reply.to_value()).await;
        Ok(())
    }

    pub(super) async fn on_end(&mut self, channel: u16) {
        // The session is going: its held frames are not wanted any more.
        self.held.retain(|h| h.channel != channel);
        if let Some(session) = self.sessions.remove(&channel) {
            self.drop_session(session);
        }
        self.send(channel, perf::end(None)).await;
    }

    pub(super) fn session(&mut self, channel: u16) -> &mut Session {
        self.sessions.get_mut(&channel).expect("checked by caller")
    }

    pub(super) async fn send_link_flow(
        &self,
        channel: u16,
        handle: u32,
        delivery_count: u32,
        credit: u32,
    ) {
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

    pub(super) async fn on_flow(
        &mut self,
        channel: u16,
        body: &Value,
    ) -> Result<(), ConnectionError> {
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

    pub(super) fn drop_session(&self, session: Session) {
        for (_, link) in session.links {
            drop_link(link);
        }
    }
}
