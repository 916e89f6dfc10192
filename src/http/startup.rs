//! Building and running the HTTP service.
//!
//! `Application::build` loads the definitions, binds the listener (port 0
//! picks a free port, which tests use) and wires the routes;
//! `run_until_stopped` serves until SIGTERM/SIGINT, re-reading the
//! definitions on SIGHUP.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::http::auth::{EmptyKey, Keys};
use crate::http::metrics::Metrics;
use crate::http::middleware::{body_deadline, observe, security_headers, BodyDeadline};

use crate::allocation::admit;
use crate::config::Settings;
use crate::experiment::notify_file::check_secrets;
use crate::experiment::{load_dir, Catalog, ValidationErrors};
use crate::http::state::AppState;
use crate::http::{backups, routes};
use crate::notify::Notifier;
use crate::store::engine::Limits;
use crate::store::{PgStore, SledStore, Store};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("the experiments folder is invalid:\n{0}")]
    InvalidDefinitions(#[from] ValidationErrors),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error(
        "refusing to listen on {0}: without both access keys only loopback (127.0.0.1 or ::1) is allowed; \
         set OFFERLAB_WRITE_KEY and OFFERLAB_READ_KEY to serve other hosts"
    )]
    PublicWithoutKeys(SocketAddr),
    #[error("{0}")]
    EmptyKey(#[from] EmptyKey),
    #[error("--body-timeout {0} is not a positive number of seconds; use e.g. 5")]
    BodyTimeout(f64),
    #[error("--write-deadline {0} is not a positive number of seconds; use e.g. 5")]
    WriteDeadline(f64),
    #[error("{0}")]
    StoreUrl(String),
}

/// The store `settings` name: PostgreSQL for `--store`, else sled in
/// `--data` (upgraded in place when its layout is older).
async fn open_store(settings: &Settings, catalog: &Catalog) -> Result<Arc<dyn Store>, StartupError> {
    let deadline = settings.write_deadline;
    if !(deadline.is_finite() && deadline > 0.0) {
        return Err(StartupError::WriteDeadline(deadline));
    }
    let limits = Limits { deadline: Duration::from_secs_f64(deadline), ..Limits::default() };
    if let Some(raw) = &settings.store {
        let url = crate::config::store_url(raw).map_err(StartupError::StoreUrl)?;
        let store = PgStore::open_with(&url, limits).await?;
        tracing::info!("storing in PostgreSQL");
        return Ok(Arc::new(store));
    }
    let store = SledStore::open_with(&settings.data, limits).await?;
    if store.outdated() {
        tracing::warn!(data = %settings.data.display(), "the data folder has an older layout: rebuilding it from the raw records");
        let rows = store.rebuild(catalog).await?;
        tracing::info!(rows, "data folder upgraded");
    }
    Ok(Arc::new(store))
}

pub struct Application {
    addr: SocketAddr,
    server: Server,
    state: Arc<AppState>,
    /// The notification tasks and scheduled backups, stopped when the
    /// server stops.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Builds the service on the current Tokio runtime, where the store's
    /// writer runs.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let keys = Keys::new(settings.write_key.clone(), settings.read_key.clone())?
            .with_admin(settings.admin_key.clone())?
            .with_clients(settings.client_keys.clone())?;
        if !keys.complete() && !settings.bind.ip().is_loopback() {
            return Err(StartupError::PublicWithoutKeys(settings.bind));
        }
        let no_keys = keys.none();
        if !(settings.body_timeout.is_finite() && settings.body_timeout > 0.0) {
            return Err(StartupError::BodyTimeout(settings.body_timeout));
        }
        let keys = web::Data::new(keys);
        let catalog = load_dir(&settings.experiments)?;
        check_secrets(&catalog)?;
        for e in catalog.experiments() {
            tracing::info!(experiment = %e.id, status = ?e.status, surface = e.surface.as_str(), "loaded test");
        }
        let store = open_store(settings, &catalog).await?;
        admit(store.as_ref(), &catalog).await?;
        let metrics = Arc::new(Metrics::new());
        let flush = metrics.flush.clone();
        store.on_flush(Box::new(move |seconds| flush.observe(seconds)));
        let clock = settings.now.map_or(crate::clock::Clock::System, crate::clock::Clock::Fixed);
        let state = Arc::new(AppState::new(catalog, settings.experiments.clone(), store, metrics.clone(), clock));
        let listener =
            TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind { addr: settings.bind, source })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: settings.bind, source })?;
        if no_keys {
            tracing::warn!(%addr, "no access keys set: serving loopback only, without authentication");
        }

        let data = web::Data::from(state.clone());
        let limit = settings.body_limit;
        let metrics = web::Data::from(metrics);
        let deadline = BodyDeadline(Duration::from_secs_f64(settings.body_timeout));
        let mut server = HttpServer::new(move || {
            // The last layer wrapped is the outermost: metrics see every
            // response, refusals included.
            App::new()
                .wrap(from_fn(body_deadline))
                .wrap(from_fn(security_headers))
                .wrap(from_fn(observe))
                .app_data(data.clone())
                .app_data(keys.clone())
                .app_data(metrics.clone())
                .app_data(deadline)
                .app_data(
                    web::JsonConfig::default().limit(limit).error_handler(move |e, _| routes::json_error(e, limit)),
                )
                .app_data(web::QueryConfig::default().error_handler(routes::query_error))
                .app_data(web::PayloadConfig::default().limit(limit))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .client_request_timeout(deadline.0)
        .client_disconnect_timeout(Duration::from_secs(1))
        .shutdown_timeout(10);
        if let Some(w) = settings.workers {
            server = server.workers(w.max(1));
        }
        let server =
            server.listen(listener).map_err(|source| StartupError::Bind { addr: settings.bind, source })?.run();
        tracing::info!(%addr, "offerlab listening");
        let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let mut tasks = Vec::from(Arc::new(Notifier::new(state.clone(), settings.notify_every, public_url)).start());
        let catalog = state.clone();
        tasks.push(crate::floors::start(state.store.clone(), move || catalog.catalog()));
        if let (Some(every), Some(dir)) = (settings.backup_every, &settings.backup_dir) {
            tasks.push(backups::start(state.clone(), every, dir.clone(), settings.backup_keep));
        }
        Ok(Application { addr, server, state, tasks })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (catalog and store), for inspection in tests.
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped. SIGHUP re-reads the definitions; an invalid
    /// folder is logged and the running set stays. Fails when the store's
    /// final flush does, so the process exits non-zero.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let state = self.state.clone();
            if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        if let Err(errors) = state.reload().await {
                            tracing::error!("reload refused, running set stays:\n{errors}")
                        }
                    }
                });
            }
        }
        let served = self.server.await;
        for task in &self.tasks {
            task.abort();
        }
        // Stopped (SIGTERM, SIGINT or a handle): requests are drained; finish
        // and flush every queued write before exiting.
        let closed = self.state.store.close().await;
        served?;
        match closed {
            Ok(()) => {
                tracing::info!("offerlab stopped");
                Ok(())
            }
            Err(e) => Err(std::io::Error::other(format!("the final flush of the store failed: {e}"))),
        }
    }
}
