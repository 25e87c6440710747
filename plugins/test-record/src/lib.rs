//! test-record: prints one line per handled event to stdout (the host forwards it to its log),
//! so end-to-end tests can count what every host instance handled:
//! `handled group=<cg> partition=<id> seq=<n> body=<body>`, and the lifecycle hooks as
//! `opened group=<cg> partition=<id>` / `closed group=<cg> partition=<id> reason=<reason>`.
//!
//! Config (all optional): `fail_partition` + `fail_at` (sequence number): fail that event;
//! `kind` = `retryable` (default) | `rejected` | `trap`; `retry_after_ms` (u32): the
//! `retry-after-ms` a retryable failure asks for; `times` (u32): fail only the first N
//! attempts within this instance, then succeed; `sleep_ms`: take that long over each event
//! (after printing it), so a test can stop the host while a batch is in flight;
//! `fail_init_after_ms` (Unix time in ms): `init` refuses once the clock has passed it, so a test
//! can have a plugin that starts at first and cannot start again after a trap;
//! `show_config = "true"`: when a partition opens, print every config entry the plugin got
//! (`config hub=<hub> group=<cg> <key>=<value>;...`), so tests can see what reached it.

use hubwasm_guest::{
    export_plugin, reject, retry, retry_after, CloseReason, Config, Event, EventError,
    PartitionContext, Plugin,
};

struct Record {
    fail_partition: Option<String>,
    fail_at: Option<i64>,
    kind: String,
    times: Option<u32>,
    retry_after_ms: Option<u32>,
    attempts: u32,
    sleep: Option<std::time::Duration>,
    /// Every config entry, when `show_config` is on.
    shown: Option<String>,
}

impl Plugin for Record {
    fn init(config: Config) -> Result<Self, String> {
        if let Some(deadline) = config.parse::<u128>("fail_init_after_ms")? {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_millis();
            if now > deadline {
                return Err(format!(
                    "configured to refuse init after {deadline} (now {now})"
                ));
            }
        }
        let kind = config.get("kind").unwrap_or("retryable").to_string();
        if !matches!(kind.as_str(), "retryable" | "rejected" | "trap") {
            return Err(format!(
                "config `kind` = `{kind}` is invalid: use `retryable`, `rejected` or `trap`"
            ));
        }
        Ok(Self {
            fail_partition: config.get("fail_partition").map(str::to_string),
            fail_at: config.parse("fail_at")?,
            kind,
            times: config.parse("times")?,
            retry_after_ms: config.parse("retry_after_ms")?,
            attempts: 0,
            sleep: config
                .parse::<u64>("sleep_ms")?
                .map(std::time::Duration::from_millis),
            shown: (config.get("show_config") == Some("true")).then(|| {
                let mut entries: Vec<String> = config
                    .entries()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                entries.sort();
                entries.join(";")
            }),
        })
    }

    fn handle(&mut self, ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let seq = event.sequence_number();
        let targeted = self.fail_at == Some(seq)
            && self
                .fail_partition
                .as_deref()
                .is_none_or(|p| p == ctx.partition_id);
        if targeted {
            self.attempts += 1;
            if self.times.is_none_or(|t| self.attempts <= t) {
                let message = format!("configured to fail at {}/{seq}", ctx.partition_id);
                match self.kind.as_str() {
                    "trap" => panic!("{message}"),
                    "rejected" => return Err(reject(message)),
                    _ => match self.retry_after_ms {
                        Some(ms) => return Err(retry_after(message, ms)),
                        None => return Err(retry(message)),
                    },
                }
            }
        }
        println!(
            "handled group={} partition={} seq={} body={}",
            ctx.consumer_group,
            ctx.partition_id,
            seq,
            String::from_utf8_lossy(event.body())
        );
        if let Some(sleep) = self.sleep {
            std::thread::sleep(sleep);
        }
        Ok(())
    }

    fn opened(&mut self, ctx: &PartitionContext) {
        if let Some(shown) = &self.shown {
            println!(
                "config hub={} group={} {shown}",
                ctx.event_hub, ctx.consumer_group
            );
        }
        Self::lifecycle("opened", ctx, "");
    }

    fn closed(&mut self, ctx: &PartitionContext, reason: CloseReason) {
        let reason = match reason {
            CloseReason::OwnershipLost => "ownership-lost",
            CloseReason::Shutdown => "shutdown",
        };
        Self::lifecycle("closed", ctx, &format!(" reason={reason}"));
    }
}

impl Record {
    fn lifecycle(what: &str, ctx: &PartitionContext, extra: &str) {
        println!(
            "{what} group={} partition={}{extra}",
            ctx.consumer_group, ctx.partition_id
        );
    }
}

export_plugin!(Record);
