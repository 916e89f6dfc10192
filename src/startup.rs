//! Building and running the HTTP service.
//!
//! `Application::build` loads the definitions, binds the listener (port 0
//! picks a free port, which tests use) and wires the routes;
//! `run_until_stopped` serves until SIGTERM/SIGINT, re-reading the
//! definitions on SIGHUP.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::{self, Next};
use actix_web::{web, App, HttpServer, ResponseError};

use crate::auth::{authorize, Denied, Keys};
use crate::error::{ApiError, Unauthorized};
use crate::metrics::Metrics;

use crate::config::Settings;
use crate::experiment::{load_dir, ValidationErrors};
use crate::routes;
use crate::state::{admit, AppState};
use crate::store::Store;

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
}

pub struct Application {
    addr: SocketAddr,
    server: Server,
    state: Arc<AppState>,
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        let no_keys = settings.write_key.is_none() && settings.read_key.is_none();
        let both_keys = settings.write_key.is_some() && settings.read_key.is_some();
        if !both_keys && !settings.bind.ip().is_loopback() {
            return Err(StartupError::PublicWithoutKeys(settings.bind));
        }
        let keys = Arc::new(Keys { write: settings.write_key.clone(), read: settings.read_key.clone() });
        let catalog = load_dir(&settings.experiments)?;
        for e in catalog.experiments() {
            tracing::info!(experiment = %e.id, status = ?e.status, surface = e.surface.as_str(), "loaded test");
        }
        let store = Arc::new(Store::open(&settings.data)?);
        admit(&store, &catalog)?;
        let metrics = Arc::new(Metrics::new());
        let flush = metrics.flush.clone();
        store.on_flush(Box::new(move |seconds| flush.observe(seconds)));
        let state = Arc::new(AppState::new(catalog, settings.experiments.clone(), store, metrics.clone()));
        let listener =
            TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind { addr: settings.bind, source })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind { addr: settings.bind, source })?;
        if no_keys {
            tracing::warn!(%addr, "no access keys set: serving loopback only, without authentication");
        }

        let data = web::Data::from(state.clone());
        let limit = settings.body_limit;
        let mut server = HttpServer::new(move || {
            let keys = keys.clone();
            let metrics = metrics.clone();
            App::new()
                .wrap(middleware::from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
                    let metrics = metrics.clone();
                    async move {
                        let started = std::time::Instant::now();
                        let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
                        let method = req.method().to_string();
                        let response = next.call(req).await?;
                        let status = response.status().as_u16();
                        metrics.observe_request(&route, &method, status, started.elapsed().as_secs_f64());
                        Ok(response)
                    }
                }))
                .wrap(middleware::from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
                    let keys = keys.clone();
                    async move {
                        let header = req.headers().get(AUTHORIZATION).and_then(|h| h.to_str().ok());
                        match authorize(&keys, req.path(), header) {
                            Ok(()) => next.call(req).await,
                            Err(denied) => {
                                let (basic, wrong) = match denied {
                                    Denied::Missing { basic } => (basic, false),
                                    Denied::Wrong { basic } => (basic, true),
                                };
                                let error = ApiError::Unauthorized(Unauthorized { basic, wrong });
                                Ok(req.into_response(error.error_response()))
                            }
                        }
                    }
                }))
                .app_data(data.clone())
                .app_data(
                    web::JsonConfig::default().limit(limit).error_handler(move |e, _| routes::json_error(e, limit)),
                )
                .app_data(web::QueryConfig::default().error_handler(routes::query_error))
                .app_data(web::PayloadConfig::default().limit(limit))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .shutdown_timeout(10);
        if let Some(w) = settings.workers {
            server = server.workers(w.max(1));
        }
        let server =
            server.listen(listener).map_err(|source| StartupError::Bind { addr: settings.bind, source })?.run();
        tracing::info!(%addr, "offerlab listening");
        Ok(Application { addr, server, state })
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
    /// folder is logged and the running set stays.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        #[cfg(unix)]
        {
            let state = self.state.clone();
            if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        let state = state.clone();
                        match tokio::task::spawn_blocking(move || state.reload()).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(errors)) => {
                                tracing::error!("reload refused, running set stays:\n{errors}")
                            }
                            Err(e) => tracing::error!("reload failed: {e}"),
                        }
                    }
                });
            }
        }
        let served = self.server.await;
        // Stopped (SIGTERM, SIGINT or a handle): requests are drained; finish
        // and flush every queued write before exiting.
        let store = self.state.store.clone();
        let closed = tokio::task::spawn_blocking(move || store.close()).await;
        if let Ok(Err(e)) = closed {
            tracing::error!("flushing the store on shutdown failed: {e}");
        }
        tracing::info!("offerlab stopped");
        served
    }
}
