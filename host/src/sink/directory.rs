//! The directory dead-letter sink.

use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;

use super::{path_segment, DeadLetter, DeadLetterError, DeadLetterSink};

/// One JSON line per dead letter in `<root>/<eventhub>/<consumergroup>/<partition>.jsonl`,
/// fsynced before `write` returns.
pub struct DirectorySink {
    root: PathBuf,
    /// Serialises appends of this process.
    lock: tokio::sync::Mutex<()>,
}

impl DirectorySink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The file holding a partition's dead letters.
    pub fn file(&self, event_hub: &str, consumer_group: &str, partition_id: &str) -> PathBuf {
        self.root
            .join(path_segment(event_hub))
            .join(path_segment(consumer_group))
            .join(format!("{}.jsonl", path_segment(partition_id)))
    }
}

#[async_trait]
impl DeadLetterSink for DirectorySink {
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let path = self.file(
            &letter.event_hub,
            &letter.consumer_group,
            &letter.partition_id,
        );
        let mut line = serde_json::to_vec(letter).expect("dead letters serialize");
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        let fail = |what: &str, e: std::io::Error| DeadLetterError {
            sink: self.describe(),
            message: format!("cannot {what} {}: {e}", path.display()),
        };
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of", e))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| fail("open", e))?;
        file.write_all(&line).map_err(|e| fail("append to", e))?;
        file.sync_data().map_err(|e| fail("sync", e))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, PartitionContext, PropertyValue};

    #[tokio::test]
    async fn the_directory_sink_appends_one_json_line_per_letter() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirectorySink::new(dir.path());
        let ctx = PartitionContext {
            namespace: "ns".into(),
            event_hub: "events".into(),
            consumer_group: "$Default".into(),
            partition_id: "2".into(),
        };
        let mut event = Event::new(&b"{\"a\":1}"[..], 7, "700");
        event
            .properties
            .push(("kind".into(), PropertyValue::Int(3)));
        for seq in [7, 9] {
            event.sequence_number = seq;
            let letter = DeadLetter::new(
                &ctx,
                &event,
                "boom".into(),
                "rejected",
                3,
                "filter",
                "abc123",
            );
            sink.write(&letter).await.unwrap();
        }
        let text = std::fs::read_to_string(sink.file("events", "$Default", "2")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["sequence_number"], 7);
        assert_eq!(lines[1]["sequence_number"], 9);
        assert_eq!(lines[0]["body"], "{\"a\":1}");
        assert_eq!(lines[0]["error"], "boom");
        assert_eq!(lines[0]["attempts"], 3);
        assert_eq!(lines[0]["plugin_version"], "abc123");
        assert_eq!(lines[0]["properties"]["kind"], 3);
    }
}
