//! Scheduled online backups (`serve --backup-every 24h --backup-dir DIR
//! --backup-keep 7`): each is written under a temporary name, synced,
//! renamed and its folder synced, so a file with the final name is always a
//! whole backup; the oldest beyond `keep` are removed. A failure is logged
//! and counted, and the service keeps serving (`/healthz` says nothing of
//! it: a backup is not a write).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::http::state::AppState;

/// The file names scheduled backups take: `offerlab-<UTC time>.backup`, so
/// that name order is age order.
const PREFIX: &str = "offerlab-";
const SUFFIX: &str = ".backup";

/// Starts the schedule on the current runtime: the first backup after
/// `every`, then every `every`.
pub fn start(state: Arc<AppState>, every: Duration, dir: PathBuf, keep: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match take(&state, &dir, keep).await {
                Ok((path, bytes)) => {
                    state.metrics.observe_backup(Utc::now(), bytes);
                    tracing::info!(path = %path.display(), bytes, "scheduled backup written");
                }
                Err(e) => {
                    state.metrics.observe_backup_failure();
                    tracing::error!(dir = %dir.display(), error = %e, "scheduled backup failed; the service keeps serving");
                }
            }
        }
    })
}

/// One backup into `dir`, then the oldest beyond `keep` removed: its path
/// and size.
async fn take(state: &AppState, dir: &Path, keep: usize) -> Result<(PathBuf, u64), String> {
    let export = state.store.export().await.map_err(|e| e.to_string())?;
    let source = state.store.kind();
    let dir = dir.to_owned();
    let (done, result) = tokio::sync::oneshot::channel();
    let write = move || {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let now = Utc::now();
        let path = dir.join(format!("{PREFIX}{}{SUFFIX}", now.format("%Y%m%dT%H%M%S%.3fZ")));
        let partial = path.with_extension("backup.partial");
        let file = std::fs::File::create(&partial).map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        let (_, out) = crate::backup::write_export(export, std::io::BufWriter::new(file), source, now)
            .map_err(|e| e.to_string())?;
        let file = out.into_inner().map_err(|e| e.into_error().to_string())?;
        let bytes = crate::backup::keep(file, &partial, &path).map_err(|e| e.to_string())?;
        let mut kept: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
            })
            .collect();
        kept.sort();
        let old = &kept[..kept.len().saturating_sub(keep.max(1))];
        for file in old {
            std::fs::remove_file(file).map_err(|e| format!("cannot remove {}: {e}", file.display()))?;
        }
        if !old.is_empty() {
            std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| e.to_string())?;
        }
        Ok((path, bytes))
    };
    crate::background::spawn_low_priority("backup-writer", move || {
        let _ = done.send(write());
    })
    .map_err(|e| format!("cannot start the backup: {e}"))?;
    result.await.map_err(|_| "the backup did not finish".to_owned())?
}
