//! test-effect-limits: tries the limits the host puts on effects, one case per event body, so
//! tests can see each refusal come back as a verdict and nothing staged survive it.
//!
//! Bodies: `emit-other-source` emits on behalf of a sequence number outside the call;
//! `emit-huge-body` emits a body one byte over the 1 MiB limit; `emit-too-much` emits 1 MiB
//! bodies until the call's 64 MiB budget refuses one; `state-long-key` sets a 1025-byte key;
//! `state-key-at-limit` sets a 1024-byte key; anything else emits its body and sets
//! `seen/<body>`. Every case first emits `before:<body>` and sets `before/<body>`, which a refused
//! call must not commit. The output is `out`.

use hubwasm_guest::{
    emit::{self, Outgoing},
    export_plugin, state, Config, Event, EventError, PartitionContext, Plugin,
};

const OUTPUT: &str = "out";
const MIB: usize = 1024 * 1024;

struct EffectLimits;

impl Plugin for EffectLimits {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Self)
    }

    fn handle(&mut self, _ctx: &PartitionContext, event: Event<'_>) -> Result<(), EventError> {
        let body = String::from_utf8_lossy(event.body()).into_owned();
        emit::send(OUTPUT, event, Outgoing::new(format!("before:{body}")))?;
        state::set(&format!("before/{body}"), b"1")?;
        match body.as_str() {
            "emit-other-source" => {
                emit::send(OUTPUT, event.sequence_number() + 1000, Outgoing::new("x"))?
            }
            "emit-huge-body" => emit::send(OUTPUT, event, Outgoing::new(vec![b'x'; MIB + 1]))?,
            "emit-too-much" => {
                let chunk = vec![b'x'; MIB];
                for _ in 0..=64 {
                    emit::send(OUTPUT, event, Outgoing::new(chunk.clone()))?;
                }
            }
            "state-long-key" => state::set(&"k".repeat(1025), b"1")?,
            "state-key-at-limit" => state::set(&"k".repeat(1024), b"1")?,
            _ => {
                emit::send(OUTPUT, event, Outgoing::new(body.clone()))?;
                state::set(&format!("seen/{body}"), b"1")?;
            }
        }
        Ok(())
    }
}

export_plugin!(EffectLimits);
