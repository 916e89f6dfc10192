//! Operator actions.

use std::io::Write;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// `POST /admin/reload`: re-reads the experiments folder. An invalid set is
/// refused (422, with every validation error) and the running set stays.
pub async fn reload(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let catalog = state.reload().await.map_err(ApiError::InvalidDefinitions)?;
    let ids: Vec<&str> = catalog.experiments().map(|e| e.id.as_str()).collect();
    Ok(HttpResponse::Ok().json(json!({ "reloaded": true, "experiments": ids })))
}

/// `GET /admin/backup`: every raw record, streamed as a backup file
/// ([`crate::backup`]) while the service keeps taking writes. A failure
/// mid-stream cuts the file before its trailer, which a restore refuses.
pub async fn backup(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let export = state.store.export().await?;
    let (source, now) = (state.store.kind(), chrono::Utc::now());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let encode = move || {
        let out = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        let written = crate::backup::write_export(export, out, source, now)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|(counts, mut out)| out.flush().map(|()| counts));
        match written {
            Ok(counts) => tracing::info!(?counts, "backup streamed"),
            Err(e) => {
                tracing::error!(error = %e, "backup cut short");
                let _ = tx.blocking_send(Err(e));
            }
        }
    };
    crate::background::spawn_low_priority("backup-encoder", encode).map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        .insert_header(("Content-Disposition", "attachment; filename=\"offerlab.backup\""))
        .streaming(body))
}

/// Bytes per message of a streamed backup.
const CHUNK: usize = 64 * 1024;

/// A `Write` that sends what it is given, in chunks, to a response stream;
/// it blocks while the client is slow (backpressure) and fails once the
/// client has gone.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("the client went away"))
    }
}
