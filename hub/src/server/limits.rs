//! Every bound the endpoint keeps on what a client can make it hold, in one place.
//!
//! Each field is a `[limits]` key of the hub config (`hub.toml`); what a client that reaches a
//! limit sees is said on the field. Together they bound the memory and tasks of the endpoint:
//! at most `max_connections` connections, each with at most `max_sessions_per_connection`
//! sessions of `max_links_per_session` links, `max_incomplete_bytes_per_connection` bytes of
//! deliveries still arriving, `max_queued_replies` responses per reply link and `max_tokens`
//! tokens; a receiver link holds at most two read batches (4 MiB each: one waiting for the
//! socket, the next one read; `Out::send_tracked`) and a partition allows
//! `max_receivers_per_partition` receivers per consumer group (5, as Event Hubs). A client that stops
//! reading its socket is dropped after `write_stall_timeout_ms`, so none of it is held forever.
//!
//! Fixed by the AMQP specification rather than configurable: frames before the open (SASL
//! frames and the open itself) are at most 512 bytes ([`PRE_OPEN_MAX_FRAME`]).

use std::time::Duration;

use serde::Deserialize;

/// Largest frame a peer may send before the open has been exchanged (AMQP 1.0 §2.4.1,
/// §5.3.1: MIN-MAX-FRAME-SIZE). A larger one closes the connection with a framing error.
pub const PRE_OPEN_MAX_FRAME: u32 = crate::amqp::frame::MIN_MAX_FRAME_SIZE;

/// The most `limits.max_receivers_per_partition` may allow.
pub const MAX_RECEIVERS_PER_PARTITION: usize = 1000;

/// The endpoint's limits (`[limits]` in the hub config). Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections the endpoint serves at once. One more is answered with an open and a close
    /// with `amqp:resource-limit-exceeded` naming this limit, then dropped.
    pub max_connections: usize,
    /// Sessions per connection: the open's channel-max is one less. A begin on a higher
    /// channel closes the connection with `amqp:resource-limit-exceeded`.
    pub max_sessions_per_connection: u32,
    /// Links per session: the begin's handle-max is one less. An attach with a higher handle
    /// closes the connection with `amqp:resource-limit-exceeded`.
    pub max_links_per_session: u32,
    /// Largest frame we accept and announce after the open. A larger frame closes the
    /// connection with `amqp:connection:framing-error`.
    pub max_frame_bytes: u32,
    /// Largest message (or batch) a client may send on a link, as Event Hubs Standard: 1 MiB.
    /// A larger delivery is read to its end, dropped, and rejected with
    /// `amqp:link:message-size-exceeded`; the link stays usable.
    pub max_message_bytes: u64,
    /// Bytes of multi-frame deliveries still arriving, summed over all links of a connection
    /// (`$cbs` links before authentication included). A delivery that would pass it is read to
    /// its end, dropped, and rejected with `amqp:resource-limit-exceeded`.
    pub max_incomplete_bytes_per_connection: u64,
    /// Responses a `$cbs`/`$management` reply link keeps while the client gives it no credit;
    /// a request beyond them is rejected with `amqp:resource-limit-exceeded`.
    pub max_queued_replies: usize,
    /// SAS tokens a connection keeps (one per resource); putting more drops the oldest.
    pub max_tokens: usize,
    /// Time from TCP accept to the client's open (protocol header, SASL and open included). A
    /// client that stalls longer is closed with `amqp:resource-limit-exceeded` (or dropped,
    /// before its protocol header).
    pub handshake_timeout_ms: u64,
    /// Idle timeout we announce in our open; a connection with no frame (not even a
    /// heartbeat) for twice as long is dropped.
    pub idle_timeout_ms: u32,
    /// How long a write to a client's socket may make no progress (a client that does not
    /// read what it asked for). Then the connection is dropped and everything it held (its
    /// place among the connections, its receivers' places, its tasks) is given back.
    pub write_stall_timeout_ms: u64,
    /// Receivers that may read one partition for one consumer group at once (5, as Event
    /// Hubs). One more is refused with `amqp:resource-limit-exceeded` naming this limit.
    pub max_receivers_per_partition: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_sessions_per_connection: 256,
            max_links_per_session: 256,
            max_frame_bytes: 256 * 1024,
            max_message_bytes: 1024 * 1024,
            max_incomplete_bytes_per_connection: 16 * 1024 * 1024,
            max_queued_replies: 1000,
            max_tokens: 1000,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 120_000,
            write_stall_timeout_ms: 30_000,
            max_receivers_per_partition: 5,
        }
    }
}

impl Limits {
    /// The channel-max we announce: the highest channel a session may use.
    pub fn channel_max(&self) -> u16 {
        (self.max_sessions_per_connection - 1) as u16
    }

    /// The handle-max we announce: the highest handle a link may use.
    pub fn handle_max(&self) -> u32 {
        self.max_links_per_session - 1
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn write_stall_timeout(&self) -> Duration {
        Duration::from_millis(self.write_stall_timeout_ms)
    }

    /// Why these limits cannot be used, naming the `[limits]` key; `None` when they can.
    pub fn problem(&self) -> Option<String> {
        let min_frame = PRE_OPEN_MAX_FRAME;
        let checks: [(bool, &str, String); 11] = [
            (
                self.max_connections == 0,
                "max_connections",
                "use at least 1".into(),
            ),
            (
                !(1..=65536).contains(&self.max_sessions_per_connection),
                "max_sessions_per_connection",
                "use 1 to 65536".into(),
            ),
            (
                self.max_links_per_session == 0,
                "max_links_per_session",
                "use at least 1".into(),
            ),
            (
                self.max_frame_bytes < min_frame,
                "max_frame_bytes",
                format!("use at least {min_frame} (the AMQP minimum)"),
            ),
            (
                self.max_message_bytes == 0,
                "max_message_bytes",
                "use at least 1".into(),
            ),
            (
                self.max_incomplete_bytes_per_connection < self.max_message_bytes,
                "max_incomplete_bytes_per_connection",
                format!(
                    "use at least max_message_bytes ({}), or no message that large could arrive",
                    self.max_message_bytes
                ),
            ),
            (
                self.max_queued_replies == 0 || self.max_tokens == 0,
                "max_queued_replies and max_tokens",
                "use at least 1".into(),
            ),
            (
                self.handshake_timeout_ms == 0,
                "handshake_timeout_ms",
                "use at least 1".into(),
            ),
            (
                self.idle_timeout_ms < 1000,
                "idle_timeout_ms",
                "use at least 1000".into(),
            ),
            (
                self.write_stall_timeout_ms == 0,
                "write_stall_timeout_ms",
                "use at least 1".into(),
            ),
            (
                !(1..=MAX_RECEIVERS_PER_PARTITION).contains(&self.max_receivers_per_partition),
                "max_receivers_per_partition",
                format!(
                    "use 1 to {MAX_RECEIVERS_PER_PARTITION} (every receiver of a partition is \
                     woken and reads for each event appended)"
                ),
            ),
        ];
        checks
            .into_iter()
            .find(|(bad, _, _)| *bad)
            .map(|(_, key, what)| format!("limits.{key}: {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_announce_the_historic_maxima() {
        let limits = Limits::default();
        assert_eq!(limits.problem(), None);
        assert_eq!(limits.channel_max(), 255);
        assert_eq!(limits.handle_max(), 255);
    }

    #[test]
    fn a_problem_names_the_key() {
        let limits = Limits {
            max_incomplete_bytes_per_connection: 10,
            ..Limits::default()
        };
        let problem = limits.problem().unwrap();
        assert!(
            problem.contains("limits.max_incomplete_bytes_per_connection"),
            "{problem}"
        );
        let limits = Limits {
            max_sessions_per_connection: 0,
            ..Limits::default()
        };
        assert!(limits.problem().unwrap().contains("max_sessions"));
        let limits = Limits {
            write_stall_timeout_ms: 0,
            ..Limits::default()
        };
        assert!(limits
            .problem()
            .unwrap()
            .contains("limits.write_stall_timeout_ms"));
        for bad in [0, MAX_RECEIVERS_PER_PARTITION + 1] {
            let limits = Limits {
                max_receivers_per_partition: bad,
                ..Limits::default()
            };
            let problem = limits.problem().unwrap();
            assert!(
                problem.contains("limits.max_receivers_per_partition") && problem.contains("1000"),
                "{problem}"
            );
        }
    }
}
