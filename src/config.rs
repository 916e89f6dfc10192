//! Settings of the service: defaults, overridden by `OFFERLAB_*` environment
//! variables, overridden by flags (clap reads both).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// How `offerlab serve` runs.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on. Without access keys only loopback is allowed.
    #[arg(long, env = "OFFERLAB_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Folder of the sled database (created when missing).
    #[arg(long, env = "OFFERLAB_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// The shared store replicas use, `postgres://USER:PASSWORD@HOST:PORT/DATABASE`
    /// (default: sled in `--data`).
    #[arg(long, env = "OFFERLAB_STORE", value_parser = postgres_url, hide_env_values = true)]
    pub store: Option<String>,
    /// Folder of experiment definitions.
    #[arg(long, env = "OFFERLAB_EXPERIMENTS", default_value = "./experiments")]
    pub experiments: PathBuf,
    /// Bearer key required on `/v1/*` and `/admin/*` writes.
    #[arg(long, env = "OFFERLAB_WRITE_KEY", hide_env_values = true)]
    pub write_key: Option<String>,
    /// Key (HTTP Basic password) required to read reports.
    #[arg(long, env = "OFFERLAB_READ_KEY", hide_env_values = true)]
    pub read_key: Option<String>,
    /// Client keys of the storefronts' GrowthBook SDKs
    /// (`/api/features/{client_key}`), comma-separated.
    #[arg(long, env = "OFFERLAB_CLIENT_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub client_keys: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "OFFERLAB_BODY_LIMIT", default_value_t = 1 << 20)]
    pub body_limit: usize,
    /// Seconds a client may take to send a request's head, and its body:
    /// a slower client gets 408 and cannot hold a worker.
    #[arg(long, env = "OFFERLAB_BODY_TIMEOUT", default_value_t = 5.0)]
    pub body_timeout: f64,
    /// Worker threads for HTTP (default: one per core).
    #[arg(long, env = "OFFERLAB_WORKERS")]
    pub workers: Option<usize>,
}

impl Settings {
    /// Settings for a server on `bind` with the given folders and defaults
    /// for everything else.
    pub fn new(bind: SocketAddr, data: PathBuf, experiments: PathBuf) -> Self {
        Settings {
            bind,
            data,
            store: None,
            experiments,
            write_key: None,
            read_key: None,
            client_keys: Vec::new(),
            body_limit: 1 << 20,
            body_timeout: 5.0,
            workers: None,
        }
    }
}

/// Accepts a PostgreSQL URL; anything else is refused with what to pass.
fn postgres_url(s: &str) -> Result<String, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_owned())
    } else {
        Err("expected a PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE (leave --store out to use sled in --data)".into())
    }
}
