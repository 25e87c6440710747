//! What a partition task needs: shared by the partitions of one event hub, built by the host's
//! wiring, read by the serve loop and the batch step.

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::Store;
use crate::config::{FailureConfig, Mode};
use crate::plugin::PluginHandle;
use crate::sink::DeadLetterSink;

use super::stats::Stats;

/// What a partition task needs; shared by the partitions of one event hub.
pub struct PartitionSetup {
    pub plugin: PluginHandle,
    /// Whose plugin this is: every call is admitted by the tenant (limits, rate, storms).
    pub tenant: Arc<crate::tenant::Tenant>,
    /// `[eventhub.dedupe]`: duplicates skipped before the plugin, keys recorded before the
    /// checkpoint.
    pub dedupe: Option<Arc<crate::effects::dedupe::Dedupe>>,
    /// `[eventhub.state]`: the store, `max_value_bytes` and `max_bytes`.
    pub state: Option<(Arc<dyn crate::effects::state::StateStore>, usize, usize)>,
    /// `[[eventhub.output]]`: where the plugin's emitted events go.
    pub outputs: Arc<crate::effects::outputs::Outputs>,
    pub store: Arc<dyn Store>,
    pub dead_letter: Arc<dyn DeadLetterSink>,
    pub failure: FailureConfig,
    pub mode: Mode,
    pub max_batch_size: usize,
    pub max_wait: Duration,
    pub stats: Arc<Stats>,
    /// The host's owned partitions and their states.
    pub owned: Arc<super::owned::Owned>,
    /// This instance's owner id, and how often the fence reads the ownership record.
    pub instance_id: String,
    pub ownership_check: Duration,
    /// Partition ids told to resume after a halt (the admin API's resume).
    pub resume: tokio::sync::broadcast::Sender<String>,
    /// Bumped whenever a partition task of this event hub receives or processes anything: the
    /// processor's stall watchdog reads it.
    pub progress: std::sync::atomic::AtomicU64,
    /// The last sequence number each partition task received (for the stall watchdog).
    pub seen: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}
