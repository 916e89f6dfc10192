//! `offerlab simulate`: the simulated storefront ([`offerlab::simulate`])
//! played over HTTP against a running offerlab, with a progress bar and an
//! optional record of every batch sent.

use std::io::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use offerlab::simulate::{parse_share, play, BadEffect, Effect, Plan, Storefront, Summary};
use offerlab::wire::v1::{AssignReply, BatchReply, ExperimentList, Report};
use serde_json::{json, Value};

use super::client::{Client, ClientError};

/// The command's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, default_value_t = 21)]
    pub days: u32,
    #[arg(long, default_value_t = 1000)]
    pub visitors_per_day: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A true effect, TEST:VARIANT:+0.15, or TEST:VARIANT:-0.2@device=mobile
    /// for one segment value; repeat for more.
    #[arg(long = "effect")]
    pub effects: Vec<Effect>,
    /// Bearer key for `/v1/*`, when the server requires one.
    #[arg(long, env = "OFFERLAB_WRITE_KEY", hide_env_values = true)]
    pub write_key: Option<String>,
    /// Key for the reports, when the server requires one.
    #[arg(long, env = "OFFERLAB_READ_KEY", hide_env_values = true)]
    pub read_key: Option<String>,
    /// Record every exposure and event batch sent to FILE (JSON lines
    /// `{"path", "body"}`), to replay against another deployment.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Add rare wholesale orders (heavy-tailed order values), to see what
    /// capping does: one ordering visitor in 200 adds an order of about
    /// 3,000 (log-normal), uncapped.
    #[arg(long)]
    pub outliers: bool,
    /// Share of visitors (0 to 1) who are returning customers, with orders
    /// in the 14 days before their visit that predict their spend (what
    /// CUPED adjusts with).
    #[arg(long, default_value_t = 0.0, value_parser = parse_share)]
    pub returning: f64,
    /// The instant the last simulated day ends at, RFC 3339 (default: now).
    #[arg(long, env = "OFFERLAB_NOW")]
    pub now: Option<DateTime<Utc>>,
    /// Print the summary as one JSON line instead of sentences.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("offerlab refused {path}: {message}; pass {flag} with the key the server was started with")]
    Key { path: String, message: String, flag: &'static str },
    #[error("{0}")]
    BadEffect(#[from] BadEffect),
    #[error("cannot write the traffic record: {0}")]
    Record(std::io::Error),
}

/// The storefront over HTTP.
struct Http {
    client: Client,
    write_key: Option<String>,
    read_key: Option<String>,
    record: Option<std::io::BufWriter<std::fs::File>>,
    bar: indicatif::ProgressBar,
}

/// The flags of the two keys, as a refusal names them.
const READ_KEY: &str = "--read-key (or OFFERLAB_READ_KEY)";
const WRITE_KEY: &str = "--write-key (or OFFERLAB_WRITE_KEY)";

/// A refused key names the flag that gives it; every other failure is the
/// client's own.
fn keyed<T>(answer: Result<T, ClientError>, flag: &'static str) -> Result<T, SimulateError> {
    answer.map_err(|e| match e {
        ClientError::Refused { path, status: 401 | 403, message } => SimulateError::Key { path, message, flag },
        other => other.into(),
    })
}

impl Storefront for Http {
    type Error = SimulateError;

    fn tests(&mut self) -> Result<ExperimentList, SimulateError> {
        keyed(self.client.get("/api/v1/experiments", self.read_key.as_deref()), READ_KEY)
    }

    fn variants(&mut self, test: &str) -> Result<Vec<String>, SimulateError> {
        let path = format!("/api/v1/experiments/{test}/report");
        let report: Report = keyed(self.client.get(&path, self.read_key.as_deref()), READ_KEY)?;
        Ok(report.variants)
    }

    fn assign(&mut self, body: &Value) -> Result<AssignReply<'static>, SimulateError> {
        keyed(self.client.post("/v1/assign", body, self.write_key.as_deref()), WRITE_KEY)
    }

    fn send(&mut self, path: &str, items: &[Value]) -> Result<BatchReply, SimulateError> {
        let body = json!(items);
        if let Some(file) = &mut self.record {
            let line = json!({ "path": path, "body": body });
            writeln!(file, "{line}").and_then(|()| file.flush()).map_err(SimulateError::Record)?;
        }
        keyed(self.client.post(path, &body, self.write_key.as_deref()), WRITE_KEY)
    }

    fn day_done(&mut self) {
        self.bar.inc(1);
    }
}

/// Plays the simulation the arguments describe.
pub fn run(args: &SimulateArgs) -> Result<Summary, SimulateError> {
    let record = match &args.record {
        Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(path).map_err(SimulateError::Record)?)),
        None => None,
    };
    // Drawn only when stderr is a terminal.
    let bar = indicatif::ProgressBar::new(u64::from(args.days));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] day {pos}/{len} ({eta})")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message("simulating");
    let mut http = Http {
        client: Client::new(&args.url),
        write_key: args.write_key.clone(),
        read_key: args.read_key.clone(),
        record,
        bar,
    };
    let plan = Plan {
        days: args.days,
        visitors_per_day: args.visitors_per_day,
        seed: args.seed,
        effects: args.effects.clone(),
        outliers: args.outliers,
        returning: args.returning,
    };
    let summary = play(&plan, &mut http, args.now.unwrap_or_else(Utc::now))?;
    http.bar.finish_with_message("done");
    Ok(summary)
}
