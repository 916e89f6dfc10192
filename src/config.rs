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
    /// Checked after parsing ([`store_url`]), so that no refusal echoes a
    /// password.
    #[arg(long, env = "OFFERLAB_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Folder of experiment definitions.
    #[arg(long, env = "OFFERLAB_EXPERIMENTS", default_value = "./experiments")]
    pub experiments: PathBuf,
    /// Bearer key required on `/v1/*` and `/admin/*` writes.
    #[arg(long, env = "OFFERLAB_WRITE_KEY", hide_env_values = true)]
    pub write_key: Option<String>,
    /// Bearer key required on `/admin/*` (reload, backup) instead of the
    /// write key, so a storefront's key cannot download every visitor.
    #[arg(long, env = "OFFERLAB_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
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
    /// How often each running test's verdict is re-evaluated for the
    /// webhooks of `notify.toml` (e.g. 5m, 30s, 1h); a reload re-evaluates
    /// at once.
    #[arg(long, env = "OFFERLAB_NOTIFY_EVERY", default_value = "5m", value_parser = humantime::parse_duration)]
    pub notify_every: std::time::Duration,
    /// The address marketers open the reports at, the base of a
    /// notification's `report_url` (default: the address served).
    #[arg(long, env = "OFFERLAB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Take an online backup this often into `--backup-dir` (e.g. 24h);
    /// none without it.
    #[arg(long, env = "OFFERLAB_BACKUP_EVERY", value_parser = humantime::parse_duration, requires = "backup_dir")]
    pub backup_every: Option<std::time::Duration>,
    /// Where scheduled backups go.
    #[arg(long, env = "OFFERLAB_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// How many scheduled backups to keep; older ones are removed.
    #[arg(long, env = "OFFERLAB_BACKUP_KEEP", default_value_t = 7)]
    pub backup_keep: usize,
    /// Seconds a write waits for the store before it is answered 503 with
    /// Retry-After (a frozen or unreachable database); PostgreSQL's
    /// statement, lock and connect timeouts follow it.
    #[arg(long, env = "OFFERLAB_WRITE_DEADLINE", default_value_t = 5.0)]
    pub write_deadline: f64,
    /// Run the service's clock fixed at this RFC 3339 instant instead of
    /// the wall clock (tests, and demos of a past period).
    #[arg(long, env = "OFFERLAB_NOW")]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
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
            admin_key: None,
            read_key: None,
            client_keys: Vec::new(),
            body_limit: 1 << 20,
            body_timeout: 5.0,
            workers: None,
            write_deadline: 5.0,
            notify_every: std::time::Duration::from_secs(300),
            backup_every: None,
            backup_dir: None,
            backup_keep: 7,
            public_url: None,
            now: None,
        }
    }
}

/// A PostgreSQL connection string as given, with surrounding white space
/// dropped and the scheme in any case (`POSTGRES://`), or a `host=...`
/// key-value string; anything else is refused with what to pass, and the
/// value shown with its password blanked ([`redact`]).
pub fn store_url(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    match s.split_once("://") {
        Some((scheme, rest)) if ["postgres", "postgresql"].contains(&scheme.to_ascii_lowercase().as_str()) => {
            Ok(format!("{}://{rest}", scheme.to_ascii_lowercase()))
        }
        None if s.contains('=') => Ok(s.to_owned()),
        _ => Err(format!(
            "--store {} is not a PostgreSQL URL; use postgres://USER:PASSWORD@HOST:PORT/DATABASE (leave --store out to use sled in --data)",
            redact(s)
        )),
    }
}

/// A connection string with its password blanked: `user:***@host` in a
/// URL, `password=***` in a key-value string.
pub fn redact(s: &str) -> String {
    if let Some((scheme, rest)) = s.split_once("://") {
        let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
        let authority = match authority.rsplit_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => format!("{user_info}@{host}"),
            },
            None => authority.to_owned(),
        };
        let path = match path.map(|p| p.split_once('?').map_or((p, None), |(p, q)| (p, Some(q)))) {
            None => String::new(),
            Some((p, None)) => format!("/{p}"),
            Some((p, Some(query))) => format!("/{p}?{}", redact_pairs(query, '&')),
        };
        return format!("{scheme}://{authority}{path}");
    }
    redact_pairs(s, ' ')
}

/// `password=...` blanked among `key=value` pairs split by `sep`.
fn redact_pairs(s: &str, sep: char) -> String {
    s.split(sep)
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.trim().eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_accepted_in_any_case_and_never_echo_a_password() {
        assert_eq!(store_url(" POSTGRES://u:p@h:5432/db ").unwrap(), "postgres://u:p@h:5432/db");
        assert_eq!(store_url("postgresql://u@h/db").unwrap(), "postgresql://u@h/db");
        assert_eq!(store_url("host=h password=S3cret dbname=db").unwrap(), "host=h password=S3cret dbname=db");
        let refused = store_url("postgre://offerlab:S3cret@127.0.0.1:5432/db").unwrap_err();
        assert!(
            !refused.contains("S3cret") && refused.contains("postgre://offerlab:***@127.0.0.1:5432/db"),
            "{refused}"
        );
        assert_eq!(redact("host=h password=S3cret"), "host=h password=***");
        assert_eq!(
            redact("postgres://u:p@h/db?password=x&sslmode=off"),
            "postgres://u:***@h/db?password=***&sslmode=off"
        );
    }
}
