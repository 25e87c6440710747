//! Attach and detach: entity lookup (after authorization), link handles, refusals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::connection::*;
use super::deliver::*;
use super::filter;
use super::namespace::{EventHub, ReaderRefusal};
use super::requests::*;
use crate::amqp::performative::{condition, AmqpError, Attach, Detach, Role, Source, Target};
use crate::amqp::Value;
use crate::config::Right;
use crate::sas;

/// Credit given to sender links, topped up when half is used.
pub(super) const SENDER_CREDIT: u32 = 1000;

pub(super) const EPOCH_PROPERTY: &str = "com.microsoft:epoch";
pub(super) const RUNTIME_METRIC: &str = "com.microsoft:enable-receiver-runtime-metric";

/// How long a detach reply on a `$cbs`/`$management` link is held back.
pub(super) const DETACH_HOLD: Duration = Duration::from_millis(100);

/// Whether a sending client needs its outcomes twice (see `Connection::settle`): it leaves
/// settlement to us in mode "first". The Python SDK asks for mode "second" and completes only on
/// settled outcomes, so it gets one settled outcome at once.
pub(super) fn settles_late(attach: &Attach) -> bool {
    attach.rcv_settle_mode == 0 && attach.snd_settle_mode != 1
}

/// Strip `amqps://host/` or `sb://host/` from an address, leaving the entity path.
pub(super) fn entity(address: &str) -> String {
    sas::entity_path(address)
}

impl Connection {
    /// The event hub an attach names, once the caller's token for `path` grants `right`;
    /// otherwise the attach is refused and `None` returned. Authorization comes before the
    /// lookup, so whether the entity exists is not told to a caller without a token for it.
    async fn authorized_hub(
        &mut self,
        channel: u16,
        attach: &Attach,
        path: &str,
        right: Right,
        hub: &str,
    ) -> Option<Arc<EventHub>> {
        if let Err(e) = self.authorized(path, Some(right)) {
            self.refuse(channel, attach, e).await;
            return None;
        }
        let found = self.ns.hub(hub).cloned();
        if found.is_none() {
            let e = AmqpError::new(
                condition::NOT_FOUND,
                format!("event hub `{hub}` does not exist"),
            );
            self.refuse(channel, attach, e).await;
        }
        found
    }

    /// Refuse an attach: answer it (as the spec requires) and detach with the error at once.
    pub(super) async fn refuse(&self, channel: u16, attach: &Attach, error: AmqpError) {
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
            max_message_size: Some(self.ns.limits.max_message_bytes),
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

    pub(super) async fn on_attach(
        &mut self,
        channel: u16,
        body: &Value,
    ) -> Result<(), ConnectionError> {
        let attach = Attach::from_value(body).ok_or_else(|| protocol("malformed attach"))?;
        tracing::trace!(attach = ?body, "Attach in");
        if !self.sessions.contains_key(&channel) {
            return Err(protocol(format!("attach on unknown channel {channel}")));
        }
        // Links are kept per handle: keep to the handle-max we announced.
        let handle_max = self.ns.limits.handle_max();
        if attach.handle > handle_max {
            return Err(over_limit(format!(
                "attach with handle {}, above the handle-max {handle_max}: at most {} links \
                 per session (limits.max_links_per_session)",
                attach.handle, self.ns.limits.max_links_per_session
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
                let Some(eh) = self
                    .authorized_hub(channel, &attach, &path, Right::Send, hub)
                    .await
                else {
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
                Link::Ingest {
                    path: path.clone(),
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
                let Some(eh) = self
                    .authorized_hub(channel, &attach, &path, Right::Listen, hub)
                    .await
                else {
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
                                "at most {} receivers may read partition {id} of consumer group \
                                 {group} (limits.max_receivers_per_partition)",
                                self.ns.limits.max_receivers_per_partition
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
                    failure: PumpFailure {
                        reader_id,
                        partition: id.to_string(),
                        kick: self.kick_tx.clone(),
                    },
                }));
                tracing::debug!(hub = %eh.name, %group, partition = %id, ?start, first, ?epoch, properties = ?attach.properties, "Receiver attached");
                self.reply_attach(channel, &attach, metrics).await;
                self.insert_link(
                    channel,
                    attach.handle,
                    Link::Deliver {
                        path: path.clone(),
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
                if let Err(e) = self.authorized(&path, None) {
                    self.refuse(channel, &attach, e).await;
                    return Ok(());
                }
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

    /// Keep a newly attached link. An attach on a handle still in use replaces that link: the
    /// old one is released (its pump stopped, its place on the partition given back) instead of
    /// being dropped with its pump still running and its reader still registered.
    pub(super) fn insert_link(&mut self, channel: u16, handle: u32, link: Link) {
        if let Some(old) = self.session(channel).links.insert(handle, link) {
            tracing::debug!(
                channel,
                handle,
                "Attach on a handle in use replaces its link"
            );
            drop_link(old);
        }
    }

    pub(super) async fn reply_attach(&self, channel: u16, attach: &Attach, metrics: bool) {
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
            max_message_size: Some(self.ns.limits.max_message_bytes),
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

    pub(super) async fn on_detach(
        &mut self,
        channel: u16,
        body: &Value,
    ) -> Result<(), ConnectionError> {
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
}

pub(super) fn drop_link(link: Link) {
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

pub(super) fn node(name: &str) -> Node {
    if name == "$cbs" {
        Node::Cbs
    } else {
        Node::Management
    }
}

pub(super) fn flip(role: Role) -> Role {
    match role {
        Role::Sender => Role::Receiver,
        Role::Receiver => Role::Sender,
    }
}
