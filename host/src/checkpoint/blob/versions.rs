//! The consumer group's plugin version in Blob Storage: the version record, the components a
//! swap stores by SHA-256, and the outcome counts hosts share while a version is judged.

use crate::checkpoint::{
    check_sha256, check_swap_id, instance_file_name, GroupName, VersionOutcome, VersionRecord,
};
use std::collections::HashMap;

use async_trait::async_trait;
use azure_core::http::StatusCode;
use azure_core::{Error, Result};

use super::*;

/// The blob of a consumer group's plugin version record.
fn version_blob(group: GroupName<'_>) -> Result<String> {
    let (ns, hub, cg) = (group.namespace, group.event_hub, group.consumer_group);
    blob_name(ns, hub, cg, PLUGIN, "version")
}

#[async_trait]
impl crate::checkpoint::VersionStore for BlobCheckpointStore {
    async fn load_version(&self, group: GroupName<'_>) -> Result<Option<VersionRecord>> {
        let name = version_blob(group)?;
        let what = "reading the plugin version";
        let Some(metadata) = self.metadata_of(what, &name).await? else {
            return Ok(None);
        };
        let bad = || {
            Error::with_message(
                ErrorKind::DataConversion,
                format!(
                    "the plugin version blob {name:?} has no readable {RECORD} metadata; delete it"
                ),
            )
        };
        let hex = meta(&metadata, RECORD).ok_or_else(bad)?;
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        serde_json::from_slice(&bytes).map(Some).map_err(|_| bad())
    }

    async fn save_version(&self, group: GroupName<'_>, record: &VersionRecord) -> Result<()> {
        let name = version_blob(group)?;
        let json = serde_json::to_vec(record).map_err(|e| {
            Error::with_message(
                ErrorKind::DataConversion,
                format!("plugin version record: {e}"),
            )
        })?;
        let hex: String = json.iter().map(|b| format!("{b:02x}")).collect();
        let metadata = HashMap::from([(RECORD.to_string(), hex)]);
        self.upsert("saving the plugin version", &name, metadata)
            .await
    }

    async fn save_component(&self, group: GroupName<'_>, sha256: &str, bytes: &[u8]) -> Result<()> {
        let name = component_blob(group, sha256)?;
        // The name is the content: an object already there is this one (a reader checks).
        if self
            .metadata_of("looking up a plugin component", &name)
            .await?
            .is_some()
        {
            return Ok(());
        }
        self.container
            .put(&name, bytes.to_vec(), "application/wasm")
            .await
    }

    async fn save_outcome(&self, group: GroupName<'_>, outcome: &VersionOutcome) -> Result<()> {
        check_swap_id(&outcome.swap)?;
        let name = outcomes_prefix(group, &outcome.swap)? + &instance_file_name(&outcome.instance);
        let metadata = HashMap::from([
            (HANDLED.to_string(), outcome.handled.to_string()),
            (FAILED.to_string(), outcome.failed.to_string()),
            (HELD.to_string(), outcome.held.to_string()),
        ]);
        self.upsert("saving a version's outcome", &name, metadata)
            .await
    }

    async fn load_outcomes(&self, group: GroupName<'_>, swap: &str) -> Result<Vec<VersionOutcome>> {
        check_swap_id(swap)?;
        let prefix = outcomes_prefix(group, swap)?;
        self.list_as(
            "listing a version's outcomes",
            prefix,
            |name, metadata, _| {
                let number = |key: &str| -> Result<u64> {
                    metadata
                        .and_then(|m| meta(m, key))
                        .map(|v| parse_number::<u64>(v, name, key))
                        .transpose()
                        .map(|v| v.unwrap_or(0))
                };
                Ok(VersionOutcome {
                    swap: swap.to_string(),
                    instance: partition_of(name).to_string(),
                    handled: number(HANDLED)?,
                    failed: number(FAILED)?,
                    held: number(HELD)?,
                })
            },
        )
        .await
    }

    async fn load_component(
        &self,
        group: GroupName<'_>,
        sha256: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>> {
        let name = component_blob(group, sha256)?;
        let what = "reading a plugin component";
        let response = self
            .timed(
                what,
                self.blob(&name)
                    .get_properties(None::<BlobClientGetPropertiesOptions<'_>>),
            )
            .await;
        let size = match response {
            Ok(response) => response.content_length()?.unwrap_or(0),
            Err(e) if error_code(&e) == Some("BlobNotFound") => return Ok(None),
            Err(e) if e.http_status() == Some(StatusCode::NotFound) && error_code(&e).is_none() => {
                return Ok(None)
            }
            Err(e) => return Err(self.container.error(e, what, Some(&name))),
        };
        if size > limit {
            return Err(crate::checkpoint::component_too_large(&name, size, limit));
        }
        // Exactly the size announced, and never more: a blob replaced meanwhile fails its digest.
        let mut buffer = vec![0u8; size as usize];
        if size > 0 {
            let options = azure_storage_blob::models::BlobClientDownloadOptions {
                range: Some((0..size).into()),
                ..Default::default()
            };
            let got = self
                .timed(
                    what,
                    self.blob(&name).download_into(&mut buffer, Some(options)),
                )
                .await
                .map_err(|e| self.container.error(e, what, Some(&name)))?;
            buffer.truncate(got.len.min(buffer.len()));
        }
        Ok(Some(buffer))
    }
}

/// `<ns>/<hub>/<cg>/hubwasm-plugin/outcomes/<swap id>/`.
fn outcomes_prefix(group: GroupName<'_>, swap: &str) -> Result<String> {
    Ok(blob_prefix(
        group.namespace,
        group.event_hub,
        group.consumer_group,
        PLUGIN,
    )? + "outcomes/"
        + swap
        + "/")
}

/// `<ns>/<hub>/<cg>/hubwasm-plugin/components/<sha256>`.
fn component_blob(group: GroupName<'_>, sha256: &str) -> Result<String> {
    check_sha256(sha256)?;
    Ok(blob_prefix(
        group.namespace,
        group.event_hub,
        group.consumer_group,
        PLUGIN,
    )? + "components/"
        + sha256)
}
