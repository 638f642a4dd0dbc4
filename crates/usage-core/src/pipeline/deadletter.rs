//! The dead-letter directory: batches a destination refused, kept as NDJSON with a
//! sidecar saying why, so nothing is dropped silently and operators can replay them.

use crate::event::resource::Resource;
use crate::event::Event;
use crate::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub(crate) struct DeadLetter {
    dir: PathBuf,
    exporter: String,
}

impl DeadLetter {
    /// `<data_dir>/dead-letter/<exporter>/`.
    pub(crate) fn new(data_dir: &Path, exporter: &str) -> Self {
        DeadLetter {
            dir: data_dir.join("dead-letter").join(exporter),
            exporter: exporter.to_string(),
        }
    }

    /// Writes events and the reason; returns the NDJSON file's path.
    pub(crate) async fn write(
        &self,
        events: &[&Event],
        resource: &Resource,
        batch_id: &str,
        reason: &str,
    ) -> std::io::Result<PathBuf> {
        let mut body = Vec::with_capacity(events.len() * 400);
        json::write_ndjson(&mut body, events.iter().copied(), resource);
        let stamp = crate::Timestamp::now();
        let mut meta = Vec::new();
        meta.extend_from_slice(b"{\"exporter\":");
        json::write_str(&mut meta, &self.exporter);
        meta.extend_from_slice(
            format!(
                ",\"events\":{},\"batch_id\":\"{batch_id}\",\"at\":\"{stamp}\",\"reason\":",
                events.len()
            )
            .as_bytes(),
        );
        json::write_str(&mut meta, reason);
        meta.extend_from_slice(b"}\n");
        let dir = self.dir.clone();
        let stem = format!("{}-{batch_id}", stamp.as_micros());
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            crate::fs::write_atomic(&dir.join(format!("{stem}.meta.json")), &meta)?;
            let path = dir.join(format!("{stem}.ndjson"));
            crate::fs::write_atomic(&path, &body)?;
            Ok(path)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}
