//! Storage of exposures and events behind one interface, [`Store`]: the
//! service, the CLI and the tests use it, and no handler or analysis code
//! knows which backend is behind it.
//!
//! - [`rules`]: the write rules (first exposure wins, an earlier exposure
//!   moves the visitor, attribution at or after the first exposure,
//!   idempotent event ids), pure code over a [`rules::Ledger`], written
//!   once for every backend;
//! - [`sled`]: the embedded default, one process, a local folder;
//! - [`postgres`]: the store replicas share.
//!
//! Every backend answers a write only once it is durable, and reports its
//! health so `/healthz` can say when writes fail.

pub mod engine;
pub mod postgres;
pub mod rules;
pub mod sled;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use std::collections::BTreeMap;

use crate::aggregates::AggregateRow;
use crate::allocation::AllocationRecord;
use crate::backup::Record;
use crate::capping::VisitorTallies;
use crate::experiment::{Catalog, Experiment};
use crate::ids::{ExperimentId, MetricName, VariantIndex, VisitorId};
use crate::notify::{AfterTry, Delivery, LastDelivery};
use crate::records::{Event, Exposure};

pub use self::postgres::PgStore;
pub use self::rules::{AggregateKey, CappedCounts, CappedEntry, CappedIndex, CappedSide, Recomputed, SegmentKey};
pub use self::sled::SledStore;
use crate::stats::Moments;

/// A stored record that does not decode.
#[derive(Debug, Clone, thiserror::Error)]
#[error("stored record {key} in tree \"{tree}\" does not decode ({detail}); {}", hint(tree))]
pub struct Corrupt {
    pub tree: &'static str,
    pub key: String,
    pub detail: String,
}

/// What to run about a corrupt record of `tree`.
fn hint(tree: &str) -> &'static str {
    match tree {
        "exposures" | "events" | "visitor_events" | "allocations" => {
            "this is raw data offerlab cannot recompute: stop the service and restore it from a backup (`offerlab restore --from FILE --data NEW_FOLDER`, or `--store` for PostgreSQL); nothing was overwritten"
        }
        _ => "stop the service and run `offerlab rebuild` to recompute it from the raw exposures and events; nothing was overwritten",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] ::sled::Error),
    #[error(
        "the data folder {0} is in use by another offerlab process; stop that process or start this one with another --data folder"
    )]
    Locked(PathBuf),
    #[error("{0}")]
    Corrupt(#[from] Corrupt),
    #[error("the data folder {0} was written by a newer offerlab (format {1}); run that version")]
    NewerFormat(PathBuf, u64),
    #[error("the store cannot write: {0}; offerlab takes writes again by itself once the store accepts them")]
    Unavailable(String),
    #[error("the write queue is full; retry in a second")]
    Busy,
    #[error("the store is shutting down")]
    Closed,
    #[error("PostgreSQL: {}", postgres::said(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Config(String),
    #[error(
        "the PostgreSQL database holds offerlab schema version {found}, newer than this version's {known}; run a newer offerlab"
    )]
    NewerSchema { found: i32, known: i32 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl StoreError {
    /// Whether the same request may succeed in a moment: the store is
    /// down, full, busy, shutting down or refused this one transaction
    /// (503 with Retry-After). The rest (a corrupt record, a newer format or
    /// schema, a bad configuration, our own bug) no retry mends (500).
    pub fn retryable(&self) -> bool {
        match self {
            StoreError::Unavailable(_)
            | StoreError::Busy
            | StoreError::Closed
            | StoreError::Sled(_)
            | StoreError::Postgres(_) => true,
            StoreError::Corrupt(_)
            | StoreError::Locked(_)
            | StoreError::NewerFormat(..)
            | StoreError::NewerSchema { .. }
            | StoreError::Config(_)
            | StoreError::Internal(_) => false,
        }
    }

    /// Whether the error means the store cannot write at all (a lost or
    /// refusing database, a failing disk), rather than that one write is
    /// bad: the engine then marks the store unhealthy and probes it.
    ///
    /// PostgreSQL: a closed connection or one without an SQLSTATE, and the
    /// classes 08 (connection exception), 53 (insufficient resources: a
    /// full disk, too many connections), 57 (operator intervention: a
    /// shutdown, a statement or idle-in-transaction timeout), 25006
    /// (read-only transaction: a standby after a failover) and 55P03 (a lock
    /// wait past `lock_timeout`: a frozen peer holds the rows).
    pub fn is_outage(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::Sled(_) => true,
            StoreError::Postgres(e) => match e.code() {
                None => true,
                Some(code) => {
                    let code = code.code();
                    e.is_closed()
                        || ["08", "53", "57"].iter().any(|class| code.starts_with(class))
                        || code == "25006"
                        || code == "55P03"
                }
            },
            _ => false,
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Sled(::sled::Error::Io(e))
    }
}

/// One write: a first exposure or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Exposure(Exposure),
    Event(Event),
}

/// What happened to one accepted-for-processing write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Stored now.
    Accepted,
    /// Stored before (same event id, or a later exposure of the same
    /// visitor and test); nothing changed.
    Duplicate,
    /// The event id is stored for another visitor, name or value; nothing
    /// changed.
    Conflict,
}

/// Called with each group commit's sync duration in seconds.
pub type FlushObserver = Box<dyn Fn(f64) + Send + Sync>;

/// What [`Store::record`] returns: the outcomes once the writes are durable.
pub type Recorded<'a> = Pin<Box<dyn Future<Output = Result<Vec<Outcome>, Arc<StoreError>>> + Send + 'a>>;

/// What [`Store::export`] streams: chunks of raw records, or the error
/// that ended it.
pub type Export = tokio::sync::mpsc::Receiver<Result<Vec<Record>, StoreError>>;

/// Records per message of an export's stream, and per import.
pub const RECORD_CHUNK: usize = 10_000;

/// Per visitor, the segment attributes their first exposure kept
/// ([`Store::attributes_of`]).
pub type Attributes = BTreeMap<VisitorId, BTreeMap<String, String>>;

/// What [`Store::visit_tallies`] calls with every exposed visitor.
pub type Visit<'a> = dyn FnMut(VisitorTallies<'_>) + Send + 'a;

/// One exposed visitor as a backend streams it to [`Store::visit_tallies`]:
/// the first exposure's variant and time, the tallies, and the segment
/// attributes it kept (when asked for).
pub(crate) type OwnedTallies =
    (VariantIndex, chrono::DateTime<chrono::Utc>, crate::attribution::Tallies, BTreeMap<String, String>);

/// Visitors per message of that stream: large enough that the channel
/// costs little per visitor, small enough to keep memory flat.
pub(crate) const TALLY_CHUNK: usize = 1024;

/// Runs a backend's `reader` (which sends chunks of visitors into the
/// channel it is given) beside a loop that feeds them to `visit`, and
/// returns the reader's result once both are done.
pub(crate) async fn stream_tallies<F>(
    reader: impl FnOnce(tokio::sync::mpsc::Sender<Vec<OwnedTallies>>) -> F,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError>
where
    F: Future<Output = Result<(), StoreError>>,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<OwnedTallies>>(4);
    let feed = async {
        while let Some(chunk) = rx.recv().await {
            for (variant, ts, tallies, attributes) in &chunk {
                visit(VisitorTallies { variant: *variant, ts: *ts, tallies, attributes });
            }
        }
    };
    let (read, ()) = tokio::join!(reader(tx), feed);
    read
}

/// A store of exposures and events, with the per-day aggregates the
/// reports read.
///
/// Every method that touches the data is async and never blocks the
/// caller's thread: sled's calls run on the runtime's blocking threads
/// (one helper, `sled::blocking`), PostgreSQL's on the runtime the store
/// was opened on. A store is opened inside the service's Tokio runtime,
/// and its writer runs there.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Records writes durably; resolves once they survive power loss, with
    /// one outcome per write in order.
    fn record(&self, catalog: Arc<Catalog>, writes: Vec<Write>) -> Recorded<'_>;

    /// The backend's name, as a backup's header gives it: `sled` or
    /// `postgres`.
    fn kind(&self) -> &'static str;

    /// `Err(reason)` while writes fail (a full disk, a lost database); read
    /// from memory, never from the store.
    fn health(&self) -> Result<(), String>;

    /// Reports every group commit's sync duration (for `/metrics`).
    fn on_flush(&self, observer: FlushObserver);

    /// The per-day aggregates of the test's current phase, as rows.
    async fn aggregate_rows(&self, exp: &Experiment) -> Result<Vec<AggregateRow>, StoreError>;

    /// Calls `visit` with every exposed visitor of the test's current phase,
    /// their first exposure and tallies: the pass a capped metric's report
    /// re-aggregates from ([`crate::capping`]). Visitors stream in chunks,
    /// never all in memory at once.
    /// With `attributes`, each visitor comes with the segment attributes
    /// their first exposure kept (a breakdown's pass); without, they are
    /// not read.
    async fn visit_tallies(&self, exp: &Experiment, attributes: bool, visit: &mut Visit<'_>) -> Result<(), StoreError>;

    /// The counts of a capped metric's value index in the test's current
    /// phase (zeros when it has none).
    async fn capped_counts(&self, exp: &Experiment, metric: &MetricName) -> Result<CappedCounts, StoreError>;

    /// Values of a capped metric's index in the test's current phase, on
    /// its value side above `floor` (the index's, from its counts) from the
    /// top down: `take` of them, from `skip` places below the top (where a
    /// percentile's order statistics are).
    async fn capped_values(
        &self,
        exp: &Experiment,
        metric: &MetricName,
        floor: Option<f64>,
        skip: usize,
        take: usize,
    ) -> Result<Vec<f64>, StoreError>;

    /// Raises the floor of a capped metric's index in the test's current
    /// phase to `floor` ([`CappedCounts::floor`]) and drops what it leaves
    /// with no side to keep; `false` when the floor was already as high.
    async fn raise_capped_floor(&self, exp: &Experiment, metric: &MetricName, floor: f64) -> Result<bool, StoreError>;

    /// Entries of a capped metric's index in the test's current phase whose
    /// `side` is above `floor` (the visitors a cap cuts), from the top.
    async fn capped_top(
        &self,
        exp: &Experiment,
        metric: &MetricName,
        side: CappedSide,
        floor: f64,
    ) -> Result<Vec<(VisitorId, CappedEntry)>, StoreError>;

    /// The segment rows of the test's current phase ([`SegmentKey`]).
    async fn segment_rows(&self, exp: &Experiment) -> Result<Vec<(SegmentKey, Moments)>, StoreError>;

    /// Every stored segment row, keyed (for `verify`).
    async fn all_segments(&self) -> Result<BTreeMap<SegmentKey, Moments>, StoreError>;

    /// The segment attributes the first exposures of `visitors` to the
    /// test's current phase kept (none for a visitor without one): what a
    /// capped metric's breakdown needs of the visitors above the cap.
    async fn attributes_of(&self, exp: &Experiment, visitors: Vec<VisitorId>) -> Result<Attributes, StoreError>;

    /// Visitors exposed in earlier phases of a test (left out of its report).
    async fn earlier_phase_visitors(&self, exp: &Experiment) -> Result<u64, StoreError>;

    /// Whether one phase of a test has any recorded exposure.
    async fn has_exposures(&self, experiment: &ExperimentId, phase: u32) -> Result<bool, StoreError>;

    /// The allocation last accepted for a test.
    async fn allocation(&self, experiment: &ExperimentId) -> Result<Option<AllocationRecord>, StoreError>;

    /// Remembers a test's accepted allocation, durably.
    async fn set_allocation(&self, experiment: &ExperimentId, record: &AllocationRecord) -> Result<(), StoreError>;

    /// (exposures, events) stored.
    async fn counts(&self) -> Result<(usize, usize), StoreError>;

    /// Every stored aggregate row, keyed.
    async fn all_aggregates(&self) -> Result<BTreeMap<AggregateKey, Moments>, StoreError>;

    /// The verdict code last recorded for each test: notifications are
    /// sent when it changes.
    async fn verdicts_seen(&self) -> Result<BTreeMap<ExperimentId, String>, StoreError>;

    /// Records `code` as `experiment`'s verdict, with the deliveries the
    /// change makes, in one durable step, if the recorded code is still
    /// `seen`; `false`, and nothing written, when another replica moved it
    /// first.
    async fn advance_verdict(
        &self,
        experiment: &ExperimentId,
        seen: Option<&str>,
        code: &str,
        deliveries: &[Delivery],
    ) -> Result<bool, StoreError>;

    /// The delivery due soonest at `now`, if any, leased to `holder` for
    /// `lease`: no other replica takes it before that ends.
    async fn take_delivery(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        holder: &str,
        lease: std::time::Duration,
    ) -> Result<Option<Delivery>, StoreError>;

    /// After `holder`'s try of delivery `id`, durably: another try later, or
    /// the end of it. Nothing, when the lease went to another replica.
    async fn tried_delivery(&self, holder: &str, id: &str, after: AfterTry) -> Result<(), StoreError>;

    /// How each webhook's last delivery ended, by webhook name.
    async fn last_deliveries(&self) -> Result<Vec<LastDelivery>, StoreError>;

    /// Every raw record, in chunks (a backup): first exposures, events,
    /// accepted allocations, recorded verdicts. The store may keep taking
    /// writes meanwhile: every write it acknowledged before the call is in
    /// the stream, and one racing with it is wholly in or wholly out.
    async fn export(&self) -> Result<Export, StoreError>;

    /// Writes raw records as they are, into a store being restored; then
    /// `rebuild` recomputes everything else from them.
    async fn import(&self, records: Vec<Record>) -> Result<(), StoreError>;

    /// Every capped metric's value index, as stored (for `verify`).
    async fn all_capped(&self) -> Result<CappedIndex, StoreError>;

    /// Tallies and aggregates recomputed from the raw exposures and events;
    /// nothing is written.
    async fn recompute(&self, catalog: &Catalog) -> Result<Recomputed, StoreError>;

    /// Replaces tallies and aggregates by a recomputation from the raw
    /// records (`offerlab rebuild`, the service stopped); the number of
    /// aggregate rows written.
    async fn rebuild(&self, catalog: &Catalog) -> Result<usize, StoreError>;

    /// Where the stored aggregates differ from a recomputation from the raw
    /// records (`offerlab verify`), one line each; empty when they agree.
    async fn verify(&self, catalog: &Catalog) -> Result<Vec<String>, StoreError> {
        let recomputed = self.recompute(catalog).await?;
        let mut out = recomputed.differences(&self.all_aggregates().await?);
        out.extend(recomputed.segment_differences(&self.all_segments().await?));
        out.extend(recomputed.capped.differences(&self.all_capped().await?));
        Ok(out)
    }

    /// Stops taking writes, finishes and syncs what was queued. Fails when
    /// the final sync does, or when writes were failing at the end.
    async fn close(&self) -> Result<(), StoreError>;
}
