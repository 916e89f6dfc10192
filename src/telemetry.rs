//! Logging set-up. The sink is a parameter so tests can silence it.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs a global subscriber writing to `sink`, filtered by `RUST_LOG`
/// (default `info`). A second call is a no-op, so tests may call it freely.
pub fn init<W>(sink: W)
where
    W: for<'a> fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_target(false)
        .with_ansi(std::env::var_os("NO_COLOR").is_none())
        .try_init();
}
