//! The Blob dead-letter sink.

use std::sync::Arc;

use async_trait::async_trait;

use super::{path_segment, DeadLetter, DeadLetterError, DeadLetterSink};
use crate::azure_blob::BlobContainer;
use crate::config::BlobContainerConfig;

/// One JSON blob per dead letter, `<eventhub>/<consumergroup>/<partition>/<sequence number>.json`
/// (the number zero-padded so names sort in partition order). A redelivered event that is
/// dead-lettered again overwrites its own blob instead of adding a duplicate.
pub struct BlobSink {
    container: BlobContainer,
}

/// The Blob sink for a `dead_letter.sink = "blob"` config.
pub async fn open(config: &BlobContainerConfig) -> Result<Arc<dyn DeadLetterSink>, String> {
    Ok(Arc::new(BlobSink::new(
        crate::azure_blob::open(config).await?,
    )))
}

impl BlobSink {
    pub fn new(container: BlobContainer) -> Self {
        Self { container }
    }

    /// The blob holding the dead letter of one event.
    pub fn blob_name(letter: &DeadLetter) -> String {
        format!(
            "{}/{}/{}/{:020}.json",
            path_segment(&letter.event_hub),
            path_segment(&letter.consumer_group),
            path_segment(&letter.partition_id),
            letter.sequence_number
        )
    }
}

#[async_trait]
impl DeadLetterSink for BlobSink {
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let body = serde_json::to_vec(letter).expect("dead letters serialize");
        self.container
            .put(&Self::blob_name(letter), body, "application/json")
            .await
            .map_err(|e| DeadLetterError {
                sink: self.describe(),
                message: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        self.container.describe()
    }
}
