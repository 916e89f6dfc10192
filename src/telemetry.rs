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

/// What tests log into and read back.
#[cfg(test)]
pub(crate) mod captured {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    pub struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        /// A subscriber writing into this sink, for `with_default` or
        /// `set_default`.
        pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
            let writer = self.clone();
            tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish()
        }

        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }
}
