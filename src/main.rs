//! The `offerlab` command: parses flags and dispatches; the work happens in
//! the library, and the talk to a running offerlab in [`cli`].

mod cli;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use chrono::NaiveDate;
use offerlab::allocation::{refusals_on_folder, refusals_on_postgres};
use offerlab::assignment::{assign_all, AssignQuery};
use offerlab::config::Settings;
use offerlab::experiment::load::load_file;
use offerlab::experiment::load_dir;
use offerlab::experiment::{ValidationError, ValidationErrors};
use offerlab::http::startup::Application;
use offerlab::ids::VisitorId;
use offerlab::offline::{analyze_aggregates, Source};
use offerlab::store::{PgStore, SledStore, Store, StoreError};
use offerlab::warehouse::{self, Layout};

/// What a command fails with, printed as `error: ...`: each layer's own
/// error, whose message already says what to fix, or a sentence of the
/// command's.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Startup(#[from] offerlab::http::startup::StartupError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Definitions(#[from] ValidationErrors),
    #[error("{0}")]
    Analyze(#[from] offerlab::offline::OfflineError),
    #[error("{0}")]
    Simulate(#[from] cli::simulate::SimulateError),
    #[error("{0}")]
    Client(#[from] cli::client::ClientError),
    #[error("{0}")]
    Assign(#[from] offerlab::assignment::AssignError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Backup(#[from] offerlab::backup::BackupError),
    #[error("{0}")]
    Import(#[from] offerlab::backup::ImportError),
    #[error("{0}")]
    Said(String),
    /// A flag names something that does not exist: exit 2, as clap does.
    #[error("{0}")]
    Usage(String),
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        CliError::Said(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> Self {
        CliError::Said(message.to_owned())
    }
}

/// jemalloc instead of glibc's malloc: the sled writer allocates and frees a
/// node's copy on every change, and glibc's malloc was a quarter of its CPU
/// (BENCHMARKS.md, ingest); jemalloc also holds less resident memory.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them). By default it keeps freed pages for
/// 10 s and four arenas per core, so after a load the service held what the
/// load freed (a resident 250 MiB at a million visitors against 145 MiB
/// held once purged, BENCHMARKS.md): a background thread returns pages
/// left unused for 100 ms, and threads share one arena per core. A second
/// left 20 to 30 MiB of a load's last pages resident when it ended.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 79] = b"background_thread:true,percpu_arena:percpu,dirty_decay_ms:100,muzzy_decay_ms:0\0";

#[derive(Parser)]
#[command(name = "offerlab", version, about = "A/B experiments for upsell and cross-sell offers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve(Settings),
    /// Check a folder of experiment definitions; exit 1 when invalid.
    Validate {
        /// The folder (default: ./experiments).
        #[arg(default_value = "./experiments")]
        dir: PathBuf,
        /// A data folder to check allocation changes against, as the
        /// service would at start or reload (stop the service first: it
        /// holds the folder).
        #[arg(long, conflicts_with = "store")]
        data: Option<PathBuf>,
        /// A PostgreSQL store to check allocation changes against, as
        /// replicas would at start or reload (they may keep running).
        #[arg(long, env = "OFFERLAB_STORE", hide_env_values = true)]
        store: Option<String>,
    },
    /// Analyze aggregates produced elsewhere (a file, or a warehouse query) and print the report JSON.
    Analyze {
        /// The experiment definition (TOML).
        #[arg(long)]
        experiment: PathBuf,
        /// Aggregates as JSON or CSV: one row per variant, day and metric.
        #[arg(long, required_unless_present = "postgres", conflicts_with = "postgres")]
        aggregates: Option<PathBuf>,
        /// Read raw exposures and events from this PostgreSQL instead, with
        /// the query `offerlab sql` prints (postgres://USER:PASSWORD@HOST:PORT/DATABASE).
        #[arg(long, env = "OFFERLAB_WAREHOUSE", hide_env_values = true)]
        postgres: Option<String>,
        #[command(flatten)]
        layout: Layout,
        /// The metrics file (default: metrics.toml beside the experiment).
        #[arg(long)]
        metrics: Option<PathBuf>,
        /// The report's day, YYYY-MM-DD (default: today in the test's timezone).
        #[arg(long)]
        now: Option<NaiveDate>,
        /// Print the test by this segment of the segments.toml beside it
        /// instead (the aggregates file then has a column named by the
        /// segment's attribute; the warehouse reads it from the exposures'
        /// attributes column).
        #[arg(long)]
        by: Option<String>,
    },
    /// Print the SQL that turns raw exposures and events tables into the
    /// aggregates `analyze` reads (the default names are offerlab's own
    /// PostgreSQL store).
    Sql {
        /// The experiment definition (TOML).
        #[arg(long)]
        experiment: PathBuf,
        /// The metrics file (default: metrics.toml beside the experiment).
        #[arg(long)]
        metrics: Option<PathBuf>,
        #[command(flatten)]
        layout: Layout,
        /// Add a `segment` column: the raw value of this segment's attribute
        /// (of the segments.toml beside the test) each visitor's first
        /// exposure kept.
        #[arg(long)]
        by: Option<String>,
    },
    /// Print a test's verdict and primary-metric table from a running service.
    Report {
        /// The test's id.
        test_id: String,
        /// Also print the primary metric by this segment's values (a name in
        /// segments.toml, e.g. device).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, env = "OFFERLAB_READ_KEY", hide_env_values = true)]
        read_key: Option<String>,
    },
    /// Recompute every aggregate from the raw exposures and events (the service must be stopped).
    Rebuild {
        #[command(flatten)]
        store: MaintainedStore,
    },
    /// Recompute every aggregate from the raw exposures and events and compare with the stored ones; nothing is written.
    Verify {
        #[command(flatten)]
        store: MaintainedStore,
    },
    /// Write every raw record to one backup file: online from a running service (--url), or from a stopped store (--data, or PostgreSQL with --store).
    Backup {
        /// The backup file to write (written to FILE.partial, synced, then renamed).
        #[arg(long)]
        to: PathBuf,
        /// A running service to back up online (`GET /admin/backup`).
        #[arg(long, conflicts_with_all = ["data", "store"])]
        url: Option<String>,
        /// The key `/admin/*` needs (default: the write key).
        #[arg(long, env = "OFFERLAB_ADMIN_KEY", hide_env_values = true)]
        admin_key: Option<String>,
        #[arg(long, env = "OFFERLAB_WRITE_KEY", hide_env_values = true)]
        write_key: Option<String>,
        #[arg(long, env = "OFFERLAB_DATA", default_value = "./data", conflicts_with = "store")]
        data: PathBuf,
        /// A PostgreSQL store instead of sled, `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
        #[arg(long, env = "OFFERLAB_STORE", hide_env_values = true)]
        store: Option<String>,
    },
    /// Restore a backup into an empty store (a new --data folder, or an empty PostgreSQL with --store), or only check it (--check).
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Only check the file (trailer, checksum, counts, every record); write nothing.
        #[arg(long)]
        check: bool,
        #[arg(long, env = "OFFERLAB_DATA", default_value = "./data", conflicts_with = "store")]
        data: PathBuf,
        /// Restore into PostgreSQL instead, `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
        #[arg(long, env = "OFFERLAB_STORE", hide_env_values = true)]
        store: Option<String>,
        /// The definitions the restored aggregates are rebuilt for.
        #[arg(long, env = "OFFERLAB_EXPERIMENTS", default_value = "./experiments")]
        experiments: PathBuf,
    },
    /// Notifications: `notify test NAME` sends a sample message to a webhook of notify.toml.
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Play a simulated storefront against a running server (visitors, exposures, orders, returns).
    Simulate(cli::simulate::SimulateArgs),
    /// Print the assignment a storefront would get for one visitor and test.
    Assign {
        #[arg(long, env = "OFFERLAB_EXPERIMENTS", default_value = "./experiments")]
        experiments: PathBuf,
        /// The test's id.
        test_id: String,
        /// The visitor's id.
        #[arg(value_parser = VisitorId::parse)]
        visitor_id: VisitorId,
        /// An attribute, as key=value; repeat for more.
        #[arg(long = "attr", value_parser = parse_attr)]
        attrs: Vec<(String, String)>,
    },
}

#[derive(Subcommand)]
enum NotifyAction {
    /// Send one sample message, signed, to the webhook NAME of notify.toml, to check its wiring.
    Test {
        /// The webhook's name in notify.toml.
        name: String,
        #[arg(long, env = "OFFERLAB_EXPERIMENTS", default_value = "./experiments")]
        experiments: PathBuf,
        /// The base of the message's report link.
        #[arg(long, env = "OFFERLAB_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
        public_url: String,
    },
}

/// A store that already holds data: sled in `data`, or PostgreSQL at
/// `store`.
async fn open_existing(data: &std::path::Path, store: Option<&str>) -> Result<Box<dyn Store>, CliError> {
    Ok(match store {
        Some(raw) => Box::new(PgStore::open(&offerlab::config::store_url(raw)?).await?),
        None => {
            if !data.join("db").exists() {
                return Err(format!(
                    "no offerlab data in {}; pass the folder the service uses (--data), or --store for PostgreSQL",
                    data.display()
                )
                .into());
            }
            Box::new(SledStore::open(data).await?)
        }
    })
}

/// Runs `work` on a multi-threaded Tokio runtime: the service's, and the
/// one a store opened by a command runs its writer on.
fn on_runtime<T>(work: impl std::future::Future<Output = T>) -> Result<T, CliError> {
    let runtime = tokio::runtime::Runtime::new()?;
    Ok(runtime.block_on(work))
}

/// The store `rebuild` and `verify` work on: sled in `--data`, or
/// PostgreSQL with `--store`.
#[derive(clap::Args)]
struct MaintainedStore {
    #[arg(long, env = "OFFERLAB_DATA", default_value = "./data")]
    data: PathBuf,
    /// A PostgreSQL store instead of sled, `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
    #[arg(long, env = "OFFERLAB_STORE", hide_env_values = true)]
    store: Option<String>,
    #[arg(long, env = "OFFERLAB_EXPERIMENTS", default_value = "./experiments")]
    experiments: PathBuf,
}

impl MaintainedStore {
    async fn open(&self) -> Result<(Box<dyn Store>, offerlab::experiment::Catalog), CliError> {
        let catalog = load_dir(&self.experiments)?;
        let store = open_existing(&self.data, self.store.as_deref()).await?;
        Ok((store, catalog))
    }
}

fn parse_attr(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("attribute \"{s}\" is not key=value"))
}

fn main() -> ExitCode {
    offerlab::telemetry::init(std::io::stderr);
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                CliError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve(settings) => {
            on_runtime(async {
                let app = Application::build(&settings).await?;
                // One machine-readable line, for scripts and tests that bind port 0.
                println!("listening on http://{}", app.addr());
                Ok::<_, CliError>(app.run_until_stopped().await?)
            })??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { dir, data, store } => match load_dir(&dir).and_then(|catalog| {
            if data.is_some() || store.is_some() {
                on_runtime(async {
                    if let Some(data) = data {
                        refusals_on_folder(&data, &catalog).await?;
                    }
                    if let Some(url) = store {
                        refusals_on_postgres(&url, &catalog).await?;
                    }
                    Ok::<_, ValidationErrors>(())
                })
                .map_err(|e| {
                    ValidationErrors(vec![ValidationError {
                        file: "--data".into(),
                        line: None,
                        message: e.to_string(),
                    }])
                })??;
            }
            Ok(catalog)
        }) {
            Ok(catalog) => {
                println!("{}: {} experiment(s) valid", dir.display(), catalog.len());
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{} problem(s) found", errors.0.len());
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Analyze { experiment, aggregates, postgres, layout, metrics, now, by } => {
            let source = match (&aggregates, &postgres) {
                (Some(path), _) => Source::File(path),
                (None, Some(url)) => Source::Warehouse { url, layout: &layout },
                (None, None) => return Err("pass --aggregates FILE or --postgres URL".into()),
            };
            let analysed =
                match on_runtime(analyze_aggregates(&experiment, metrics.as_deref(), source, now, by.as_deref()))? {
                    Err(e @ offerlab::offline::OfflineError::UnknownSegment(..)) => {
                        return Err(CliError::Usage(format!("--by: {e}")))
                    }
                    other => other?,
                };
            for note in &analysed.notes {
                eprintln!("note: {note}");
            }
            match &analysed.segments {
                Some(segments) => println!("{}", serde_json::to_string_pretty(segments)?),
                None => println!("{}", serde_json::to_string_pretty(&analysed.report)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sql { experiment, metrics, layout, by } => {
            let catalog = load_file(&experiment, metrics.as_deref())?;
            let exp = catalog.experiments().next().expect("one experiment");
            let attribute = match &by {
                None => None,
                Some(name) => match catalog.segment(name) {
                    Some(s) => Some(s.attribute.as_str()),
                    None => {
                        let unknown =
                            offerlab::offline::OfflineError::UnknownSegment(name.clone(), catalog.segment_names());
                        return Err(CliError::Usage(format!("--by: {unknown}")));
                    }
                },
            };
            print!("{}", warehouse::aggregates_sql_by(exp, &catalog, &layout, attribute));
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { test_id, by, url, read_key } => {
            let client = cli::client::Client::new(&url);
            let report: offerlab::wire::v1::Report =
                client.get(&format!("/api/v1/experiments/{test_id}/report"), read_key.as_deref())?;
            let segments = match &by {
                None => None,
                Some(segment) => {
                    let path = format!("/api/v1/experiments/{test_id}/segments/{segment}");
                    match client.get::<offerlab::wire::v1::Segments>(&path, read_key.as_deref()) {
                        Err(cli::client::ClientError::Refused { status: 404, message, .. })
                            if message.starts_with("unknown segment") =>
                        {
                            return Err(CliError::Usage(format!("--by {segment}: {message}")));
                        }
                        other => Some(other?),
                    }
                }
            };
            print!("{}", offerlab::terminal::report(&report));
            if let Some(s) = segments {
                print!("{}", offerlab::terminal::by_segment(&report, &s));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild { store } => on_runtime(async {
            let (store, catalog) = store.open().await?;
            let rows = store.rebuild(&catalog).await?;
            let (exposures, events) = store.counts().await?;
            store.close().await?;
            println!("rebuilt {rows} aggregate rows from {exposures} exposures and {events} events");
            Ok(ExitCode::SUCCESS)
        })?,
        Command::Verify { store } => on_runtime(async {
            let (store, catalog) = store.open().await?;
            let differences = store.verify(&catalog).await?;
            let (exposures, events) = store.counts().await?;
            store.close().await?;
            if differences.is_empty() {
                println!("every aggregate agrees with the {exposures} exposures and {events} events it is made of");
                return Ok(ExitCode::SUCCESS);
            }
            for d in &differences {
                eprintln!("{d}");
            }
            Err(format!(
                "{} aggregate row(s) differ from the raw records; stop the service and run `offerlab rebuild`",
                differences.len()
            )
            .into())
        })?,
        Command::Backup { to, url, admin_key, write_key, data, store } => {
            let partial = to.with_extension("partial");
            let file =
                std::fs::File::create(&partial).map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let counts = match url {
                Some(url) => {
                    let key = admin_key.or(write_key);
                    cli::client::Client::new(&url).download("/admin/backup", key.as_deref(), &mut out)?;
                    std::io::Write::flush(&mut out)?;
                    let check = std::fs::File::open(&partial)?;
                    offerlab::backup::read(std::io::BufReader::new(check), |_| {})?.1
                }
                None => {
                    let (counts, written) = on_runtime(async {
                        let store = open_existing(&data, store.as_deref()).await?;
                        let export = store.export().await?;
                        let source = store.kind();
                        let written = tokio::task::spawn_blocking(move || {
                            offerlab::backup::write_export(export, out, source, chrono::Utc::now())
                        })
                        .await
                        .map_err(|e| format!("the backup did not finish: {e}"))??;
                        store.close().await?;
                        Ok::<_, CliError>(written)
                    })??;
                    out = written;
                    counts
                }
            };
            offerlab::backup::keep(out.into_inner().map_err(|e| e.into_error())?, &partial, &to)?;
            println!(
                "backed up {} exposures, {} events, {} allocations and {} verdicts to {}",
                counts.exposures,
                counts.events,
                counts.allocations,
                counts.verdicts,
                to.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { from, check, data, store, experiments } => {
            let open = || std::fs::File::open(&from).map_err(|e| format!("cannot read {}: {e}", from.display()));
            let (header, counts) = offerlab::backup::read(std::io::BufReader::new(open()?), |_| {})?;
            let holds = format!(
                "{} exposures, {} events, {} allocations and {} verdicts (from {}, {})",
                counts.exposures, counts.events, counts.allocations, counts.verdicts, header.source, header.created_at
            );
            if check {
                println!("{}: a complete backup of {holds}", from.display());
                return Ok(ExitCode::SUCCESS);
            }
            let catalog = load_dir(&experiments)?;
            if store.is_none() && std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some()) {
                return Err(format!(
                    "{} already holds files; restore into a new folder (nothing was written)",
                    data.display()
                )
                .into());
            }
            on_runtime(async {
                let target: Box<dyn Store> = match &store {
                    Some(raw) => Box::new(PgStore::open(&offerlab::config::store_url(raw)?).await?),
                    None => Box::new(SledStore::open(&data).await?),
                };
                if target.counts().await? != (0, 0) || !target.verdicts_seen().await?.is_empty() {
                    return Err(CliError::from(
                        "the PostgreSQL store already holds data; restore into an empty database (nothing was written)",
                    ));
                }
                // The file was checked whole above; this second read writes.
                offerlab::backup::import(target.as_ref(), std::io::BufReader::new(open()?)).await?;
                let rows = target.rebuild(&catalog).await?;
                target.close().await?;
                println!("restored {holds}; rebuilt {rows} aggregate rows");
                Ok(ExitCode::SUCCESS)
            })?
        }
        Command::Notify { action: NotifyAction::Test { name, experiments, public_url } } => {
            let catalog = load_dir(&experiments)?;
            let Some(hook) = catalog.webhooks().iter().find(|w| w.name == name) else {
                let known: Vec<&str> = catalog.webhooks().iter().map(|w| w.name.as_str()).collect();
                return Err(format!(
                    "no webhook named {name:?} in {}; its webhooks: {}",
                    experiments.join(offerlab::experiment::notify_file::NOTIFY_FILE).display(),
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                )
                .into());
            };
            offerlab::experiment::notify_file::check_secrets(&catalog)?;
            let sample = offerlab::notify::Delivery::sample(hook, &catalog, chrono::Utc::now());
            let client = offerlab::notify::notifier::client();
            let tried = on_runtime(offerlab::notify::notifier::send(&client, hook, &sample, &public_url))?;
            match tried {
                offerlab::notify::Tried::Delivered(status) => {
                    println!("{name} ({}) took the sample message: HTTP {status}", hook.shown_url());
                    Ok(ExitCode::SUCCESS)
                }
                other => {
                    Err(format!("{name} ({}) did not take the sample message: {}", hook.shown_url(), other.said())
                        .into())
                }
            }
        }
        Command::Simulate(args) => {
            let summary = cli::simulate::run(&args)?;
            if args.json {
                println!("{}", serde_json::to_string(&summary)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "simulated {} visitors: sent {} exposures and {} events; {} stored, {} already stored (duplicates), {} rejected",
                summary.visitors,
                summary.exposures,
                summary.events,
                summary.accepted,
                summary.duplicates,
                summary.rejected
            );
            println!("report: {}/", args.url.trim_end_matches('/'));
            Ok(ExitCode::SUCCESS)
        }
        Command::Assign { experiments, test_id, visitor_id, attrs } => {
            let catalog = load_dir(&experiments)?;
            let query = AssignQuery {
                attributes: attrs.into_iter().collect::<BTreeMap<_, _>>(),
                experiments: Some(vec![test_id]),
                ..AssignQuery::new(visitor_id)
            };
            let assignments = assign_all(&catalog, &query)?;
            let reply = offerlab::wire::v1::AssignReply::new(query.visitor_id.as_str(), &assignments);
            println!("{}", serde_json::to_string_pretty(&reply)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
