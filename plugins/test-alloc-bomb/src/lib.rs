//! test-alloc-bomb: allocates 1 MiB blocks without bound on every event (touching every page),
//! until the host's memory limit stops it. No config.

use hubwasm_guest::{export_plugin, Config, Event, EventError, PartitionContext, Plugin};

struct AllocBomb {
    hoard: Vec<Vec<u8>>,
}

impl Plugin for AllocBomb {
    fn init(_config: Config) -> Result<Self, String> {
        Ok(Self { hoard: Vec::new() })
    }

    fn handle(&mut self, _ctx: &PartitionContext, _event: Event<'_>) -> Result<(), EventError> {
        loop {
            let block = vec![0xA5u8; 1 << 20];
            self.hoard.push(std::hint::black_box(block));
        }
    }
}

export_plugin!(AllocBomb);
