//! The shared store: PostgreSQL, for replicas behind one load balancer.
//! The schema is created or migrated at start ([`migrations`]).
//!
//! Writes go through the shared group-commit engine ([`super::engine`]),
//! as with sled: each group is applied in one transaction, committed with
//! `synchronous_commit = on` before any of its requests is answered, so a
//! 2xx means the write is durable in PostgreSQL. The writer has connections
//! of its own ([`WRITER_CONNECTIONS`]), so report readers never make it
//! wait for one.
//!
//! Concurrency across replicas, and the write rules that need it ("an
//! earlier exposure moves the visitor", "an event before its exposure"):
//! a group first locks the row of every visitor it writes (table
//! `visitors`, `FOR UPDATE`, in byte order), so two replicas touching one
//! visitor run one after the other, each seeing the other's committed
//! rows. It then reads those visitors' rows once and runs the shared
//! [`rules`](super::rules) in memory ([`overlay`]). Aggregate rows, shared
//! by all visitors of a day, are never read: the group adds its summed
//! deltas (`n = n + Δn`, ...) in key order, after the visitor locks. Every
//! transaction takes locks in that one global order (visitors by id, then
//! aggregate rows by key), so replicas cannot deadlock, and no increment
//! is lost. Event ids are unique per visitor (the key of `events` is
//! (visitor, id)), so the visitor's lock covers them too.
//!
//! Everything runs on the runtime the store was opened on (the service's):
//! the writer, and every reader's query, handed to it as a task and
//! awaited, so a connection's I/O never depends on which worker thread
//! asked. Nothing blocks a thread.
//!
//! Between "up" and "down" ([`Timeouts`]): every connection sets a
//! statement timeout, a lock timeout (a peer frozen inside its transaction
//! holds row locks for at most that long), an idle-in-transaction timeout
//! (PostgreSQL ends a frozen replica's transaction and frees its locks),
//! TCP keepalives and a TCP user timeout (a network black hole is noticed),
//! and a connect timeout. A write still unanswered at the engine's deadline
//! gets 503. A lost connection, a restarting, read-only or full database
//! ([`StoreError::is_outage`]) answers 503 (the commit's outcome is then
//! unknown, and a retry is safe: event ids and first exposures make it
//! idempotent); the engine then probes every second with a heartbeat
//! write and takes writes again by itself.

pub mod migrations;
pub mod overlay;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls};

use super::engine::{Backend, BoxFuture, Engine, Limits, Pending};
use super::rules::{
    apply, AggregateKey, CappedCounts, CappedEntry, CappedIndex, CappedScope, CappedSide, Recomputed, TallyKey,
};
use super::{
    stream_tallies, Attributes, Corrupt, FlushObserver, Outcome, Recorded, SegmentKey, Store, StoreError, Visit, Write,
    TALLY_CHUNK,
};
use crate::aggregates::AggregateRow;
use crate::allocation::AllocationRecord;
use crate::attribution::Tallies;
use crate::backup::Record;
use crate::experiment::{Catalog, Experiment};
use crate::ids::{EventId, EventName, ExperimentId, MetricName, VariantIndex, VisitorId};
use crate::notify::{AfterTry, Delivery, LastDelivery};
use crate::records::{Event, Exposure};
use crate::stats::Moments;
use overlay::{Changes, Needs, Overlay};

/// How often a group is tried again after PostgreSQL aborted it for a
/// deadlock or serialization failure (the lock order rules both out; this
/// is a second line).
const RETRIES: usize = 5;
/// Connections kept for the writer alone; readers share [`READ_CONNECTIONS`].
const WRITER_CONNECTIONS: usize = 2;
const READ_CONNECTIONS: usize = 8;

/// How long PostgreSQL may take before a replica gives up on it: the
/// deadlines of [`PgStore::open_with`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting, and each TCP exchange (keepalives, the user timeout).
    pub connect: Duration,
    /// One statement, including waiting for a lock.
    pub statement: Duration,
    /// Waiting for a row lock another replica holds.
    pub lock: Duration,
    /// A transaction left idle (its replica frozen) before PostgreSQL ends
    /// it and frees its locks.
    pub idle_in_transaction: Duration,
}

impl Timeouts {
    /// Derived from the engine's write deadline: a lock or statement gives
    /// up well before a write's answer is due.
    pub fn for_deadline(deadline: Duration) -> Timeouts {
        let d = deadline.max(Duration::from_millis(500));
        Timeouts { connect: d, statement: d, lock: d / 2, idle_in_transaction: d }
    }

    fn options(&self) -> String {
        format!(
            "-c synchronous_commit=on -c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            self.statement.as_millis(),
            self.lock.as_millis(),
            self.idle_in_transaction.as_millis()
        )
    }
}

pub struct PgStore {
    /// The readers' connections.
    pool: Pool,
    /// How maintenance (rebuild, verify) connects: without the write
    /// deadline's timeouts, which a pass over millions of rows outlasts.
    maintenance: tokio_postgres::Config,
    engine: Engine,
    /// The runtime the store was opened on, where every query runs.
    runtime: tokio::runtime::Handle,
}

/// What PostgreSQL does for the engine: a group in one transaction, and a
/// heartbeat row as the probe.
struct PgBackend {
    pool: Pool,
    /// This replica's heartbeat row.
    replica: String,
}

impl Backend for PgBackend {
    fn commit(&self, group: Arc<[Pending]>) -> BoxFuture<'_, Result<Vec<Vec<Outcome>>, StoreError>> {
        Box::pin(async move { commit_with_retries(&self.pool, &group).await })
    }

    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_error)?;
            client
                .execute(
                    "INSERT INTO heartbeats (replica, at) VALUES ($1, now())
                     ON CONFLICT (replica) DO UPDATE SET at = EXCLUDED.at",
                    &[&self.replica],
                )
                .await?;
            Ok(())
        })
    }
}

fn pool(config: &tokio_postgres::Config, size: usize, timeouts: Timeouts) -> Result<Pool, StoreError> {
    let manager =
        Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(timeouts.connect))
        .wait_timeout(Some(timeouts.connect * 2))
        .build()
        .map_err(|e| StoreError::Config(e.to_string()))
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`),
    /// creates or migrates the schema, and starts the writer on the current
    /// Tokio runtime, with the engine's default limits.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        PgStore::open_with(url, Limits::default()).await
    }

    /// [`PgStore::open`] with the engine's limits; PostgreSQL's own
    /// timeouts follow the write deadline ([`Timeouts::for_deadline`]).
    pub async fn open_with(url: &str, limits: Limits) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Config(format!(
                "the store URL is not a PostgreSQL connection string ({e}); use postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ))
        })?;
        let timeouts = Timeouts::for_deadline(limits.deadline);
        let mut maintenance = config.clone();
        maintenance.options("-c synchronous_commit=on").connect_timeout(timeouts.connect).keepalives(true);
        config
            .options(timeouts.options())
            .connect_timeout(timeouts.connect)
            .keepalives(true)
            .keepalives_idle(timeouts.connect)
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3)
            .tcp_user_timeout(timeouts.connect);
        let runtime = tokio::runtime::Handle::current();
        let pool = pool(&config, READ_CONNECTIONS, timeouts)?;
        migrations::run(&mut pool.get().await.map_err(pool_error)?).await?;
        let writer_pool = self::pool(&config, WRITER_CONNECTIONS, timeouts)?;
        let replica = format!("{}-{}", std::process::id(), rand::random::<u64>());
        let engine = Engine::start(Arc::new(PgBackend { pool: writer_pool, replica }), limits, &runtime);
        Ok(PgStore { pool, maintenance, engine, runtime })
    }

    /// Runs maintenance on a connection of its own, opened without the
    /// write deadline: no statement or idle-transaction timeout, and no TCP
    /// user timeout (a rebuild sends hundreds of megabytes of rows while
    /// the server is still busy with the statement before).
    async fn maintain<T, F>(
        &self,
        work: impl FnOnce(tokio_postgres::Client) -> F + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let config = self.maintenance.clone();
        self.run(move |_| async move {
            let (client, connection) = config.connect(NoTls).await?;
            let connection = tokio::spawn(connection);
            let out = work(client).await;
            let _ = connection.await; // ends once the client is dropped
            out
        })
        .await
    }

    /// Runs a query on the store's runtime and awaits it.
    async fn run<T, F>(&self, query: impl FnOnce(Pool) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.runtime
            .spawn(query(self.pool.clone()))
            .await
            .map_err(|e| StoreError::Internal(format!("a PostgreSQL query did not finish: {e}")))?
    }

    /// Every row `sql` (without parameters) selects.
    async fn query_all(&self, sql: String) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.run(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            Ok(client.query(&sql, &[]).await?)
        })
        .await
    }
}

/// What PostgreSQL said, in its own words: the server's message and
/// SQLSTATE (a wrong password, a full `max_connections`, a missing table),
/// or the client's error with its cause (a refused connection), never the
/// bare "db error".
pub fn said(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(&format!(": {words}"));
        }
        source = cause.source();
    }
    text
}

/// The columns [`moments_at`] reads: `n` and [`Moments::SUM_NAMES`].
const SUM_COLUMNS: &str = "n, sum, sum_sq, den_sum, den_sum_sq, sum_xy, pre_sum, pre_sum_sq, sum_x_pre";

/// A row's `n` and sums (the columns of [`SUM_COLUMNS`]), from column
/// `first` on: the store's aggregate rows and the warehouse query's alike.
pub(crate) fn moments_at(r: &tokio_postgres::Row, first: usize) -> Moments {
    let n = u64::try_from(r.get::<_, i64>(first)).unwrap_or(0);
    Moments::from_sums(n, std::array::from_fn(|i| r.get(first + 1 + i)))
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn record(&self, catalog: Arc<Catalog>, writes: Vec<Write>) -> Recorded<'_> {
        self.engine.record(catalog, writes)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn health(&self) -> Result<(), String> {
        self.engine.health()
    }

    async fn aggregate_rows(&self, exp: &Experiment) -> Result<Vec<AggregateRow>, StoreError> {
        let (id, phase) = (exp.id.as_str().to_owned(), phase_i32(exp.allocation_version));
        let rows = self
            .run(move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                Ok(client
                    .query(
                        &format!(
                            "SELECT variant, date, metric, {SUM_COLUMNS}
                         FROM aggregates WHERE experiment = $1 AND phase = $2
                         ORDER BY variant, date, metric"
                        ),
                        &[&id, &phase],
                    )
                    .await?)
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let variant = exp.variant_at(VariantIndex::from_sql(r.get(0))?)?.key.clone();
                Some(AggregateRow { variant, date: r.get(1), metric: r.get(2), moments: moments_at(r, 3) })
            })
            .collect())
    }

    /// Rows stream from the store's runtime in chunks, so the tallies of
    /// a test's million visitors are never in memory at once.
    async fn visit_tallies(&self, exp: &Experiment, attributes: bool, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let (id, phase) = (exp.id.as_str().to_owned(), phase_i32(exp.allocation_version));
        stream_tallies(
            |tx| {
                self.run(move |pool| async move {
                    use futures_util::TryStreamExt;
                    let client = pool.get().await.map_err(pool_error)?;
                    let params: [&(dyn ToSql + Sync); 2] = [&id, &phase];
                    let rows = client
                        .query_raw(
                            "SELECT x.variant, x.ts, t.visitor, t.tallies::text, x.attributes::text
                             FROM tallies AS t
                             JOIN exposures AS x USING (visitor, experiment, phase)
                             WHERE t.experiment = $1 AND t.phase = $2",
                            params,
                        )
                        .await?;
                    futures_util::pin_mut!(rows);
                    let mut chunk = Vec::with_capacity(TALLY_CHUNK);
                    while let Some(r) = rows.try_next().await? {
                        chunk.push(visitor_tallies(&r, attributes)?);
                        if chunk.len() == TALLY_CHUNK && tx.send(std::mem::take(&mut chunk)).await.is_err() {
                            return Ok(()); // the reader gave up
                        }
                    }
                    let _ = tx.send(chunk).await;
                    Ok(())
                })
            },
            visit,
        )
        .await
    }

    async fn capped_counts(&self, exp: &Experiment, metric: &MetricName) -> Result<CappedCounts, StoreError> {
        let (id, phase, name) = (exp.id.as_str().to_owned(), phase_i32(exp.allocation_version), metric.clone());
        let row = self
            .run(move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                Ok(client
                    .query_opt(
                        "SELECT covered, positive, negative, floor FROM capped_counts
                         WHERE experiment = $1 AND phase = $2 AND metric = $3",
                        &[&id, &phase, &name.as_str()],
                    )
                    .await?)
            })
            .await?;
        let Some(row) = row else { return Ok(CappedCounts::default()) };
        let count = |i: usize| {
            let stored: i64 = row.get(i);
            u64::try_from(stored).map_err(|_| Corrupt {
                tree: "capped_counts",
                key: format!("{}/{}/{metric}", exp.id, exp.allocation_version),
                detail: format!("a count of {stored}"),
            })
        };
        Ok(CappedCounts { covered: count(0)?, positive: count(1)?, negative: count(2)?, floor: row.get(3) })
    }

    async fn capped_values(
        &self,
        exp: &Experiment,
        metric: &MetricName,
        floor: Option<f64>,
        skip: usize,
        take: usize,
    ) -> Result<Vec<f64>, StoreError> {
        let (id, phase, name) = (exp.id.as_str().to_owned(), phase_i32(exp.allocation_version), metric.clone());
        let [skip, take] = [skip, take].map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let floor = floor.unwrap_or(f64::NEG_INFINITY);
        let rows = self
            .run(move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                Ok(client.query(sql::CAPPED_VALUES, &[&id, &phase, &name.as_str(), &floor, &skip, &take]).await?)
            })
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn raise_capped_floor(&self, exp: &Experiment, metric: &MetricName, floor: f64) -> Result<bool, StoreError> {
        let (id, phase, name) = (exp.id.as_str().to_owned(), phase_i32(exp.allocation_version), metric.clone());
        self.run(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let key: [&(dyn ToSql + Sync); 4] = [&id, &phase, &name.as_str(), &floor];
            // The floor first, in a statement of its own: a writer that
            // reads it after keeps nothing at or below it, so what the
            // sweep below leaves (rows a writer that read the old floor
            // adds meanwhile) is at or below the floor, where no read looks.
            if client.execute(sql::RAISE_FLOOR, &key).await? == 0 {
                return Ok(false);
            }
            client.execute(sql::SWEEP_BELOW_FLOOR, &key).await?;
            Ok(true)
        })
        .await
    }

    async fn capped_top(
        &self,
        exp: &Experiment,
        metric: &MetricName,
        side: CappedSide,
        floor: f64,
    ) -> Result<Vec<(VisitorId, CappedEntry)>, StoreError> {
        let (id, phase, name) = (exp.id.as_str().to_owned(), phase_i32(exp.allocation_version), metric.clone());
        let query = sql::capped_top(match side {
            CappedSide::Value => "x",
            CappedSide::Covariate => "pre",
        });
        let rows = self
            .run(move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                Ok(client.query(&query, &[&id, &phase, &name.as_str(), &floor]).await?)
            })
            .await?;
        rows.iter()
            .map(|r| {
                let key = || format!("{}/{}/{metric}/{}", exp.id, exp.allocation_version, r.get::<_, &str>(0));
                let entry = CappedEntry {
                    variant: variant_at(r, 1, "capped_values", key)?,
                    date: r.get(2),
                    value: crate::stats::VisitorValue { x: r.get(3), y: r.get(4), pre: r.get(5) },
                };
                Ok((parsed(r, 0, "capped_values", VisitorId::parse_owned)?, entry))
            })
            .collect()
    }

    async fn earlier_phase_visitors(&self, exp: &Experiment) -> Result<u64, StoreError> {
        let (id, phase, metric) =
            (exp.id.as_str().to_owned(), phase_i32(exp.allocation_version), exp.primary_metric.clone());
        let n: i64 = self
            .run(move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                let row = client
                    .query_one(
                        "SELECT coalesce(sum(n), 0)::bigint FROM aggregates
                     WHERE experiment = $1 AND phase < $2 AND metric = $3",
                        &[&id, &phase, &metric],
                    )
                    .await?;
                Ok(row.get(0))
            })
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn has_exposures(&self, experiment: &ExperimentId, phase: u32) -> Result<bool, StoreError> {
        let (id, phase) = (experiment.as_str().to_owned(), phase_i32(phase));
        self.run(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM aggregates WHERE experiment = $1 AND phase = $2)",
                    &[&id, &phase],
                )
                .await?;
            Ok(row.get(0))
        })
        .await
    }

    async fn allocation(&self, experiment: &ExperimentId) -> Result<Option<AllocationRecord>, StoreError> {
        let id = experiment.as_str().to_owned();
        let text: Option<String> = self
            .run(move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                let row =
                    client.query_opt("SELECT record::text FROM allocations WHERE experiment = $1", &[&id]).await?;
                Ok(row.map(|r| r.get(0)))
            })
            .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                StoreError::Corrupt(super::Corrupt {
                    tree: "allocations",
                    key: experiment.to_string(),
                    detail: e.to_string(),
                })
            })
        })
        .transpose()
    }

    async fn set_allocation(&self, experiment: &ExperimentId, record: &AllocationRecord) -> Result<(), StoreError> {
        let (id, text) = (experiment.as_str().to_owned(), serde_json::to_string(record).expect("records serialize"));
        self.run(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .execute(
                    "INSERT INTO allocations (experiment, record) VALUES ($1, $2::text::jsonb)
                     ON CONFLICT (experiment) DO UPDATE SET record = EXCLUDED.record",
                    &[&id, &text],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn counts(&self) -> Result<(usize, usize), StoreError> {
        let (x, e): (i64, i64) = self
            .run(|pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                let row = client
                    .query_one("SELECT (SELECT count(*) FROM exposures), (SELECT count(*) FROM events)", &[])
                    .await?;
                Ok((row.get(0), row.get(1)))
            })
            .await?;
        Ok((usize::try_from(x).unwrap_or(0), usize::try_from(e).unwrap_or(0)))
    }

    fn on_flush(&self, observer: FlushObserver) {
        self.engine.on_flush(observer);
    }

    async fn all_aggregates(&self) -> Result<BTreeMap<AggregateKey, Moments>, StoreError> {
        let rows = self
            .query_all(format!("SELECT experiment, phase, variant, date, metric, {SUM_COLUMNS} FROM aggregates"))
            .await?;
        rows.iter().map(|r| Ok((aggregate_key_at(r, "aggregates")?, moments_at(r, 5)))).collect()
    }

    async fn segment_rows(&self, exp: &Experiment) -> Result<Vec<(SegmentKey, Moments)>, StoreError> {
        let (id, phase) = (exp.id.as_str().to_owned(), phase_i32(exp.allocation_version));
        let rows = self
            .run(move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                Ok(client
                    .query(
                        &format!(
                            "SELECT experiment, phase, variant, metric, attribute, value, {SUM_COLUMNS}
                             FROM segment_aggregates WHERE experiment = $1 AND phase = $2"
                        ),
                        &[&id, &phase],
                    )
                    .await?)
            })
            .await?;
        rows.iter().map(segment_row).collect()
    }

    async fn all_segments(&self) -> Result<BTreeMap<SegmentKey, Moments>, StoreError> {
        let rows = self
            .query_all(format!(
                "SELECT experiment, phase, variant, metric, attribute, value, {SUM_COLUMNS} FROM segment_aggregates"
            ))
            .await?;
        rows.iter().map(segment_row).collect()
    }

    async fn attributes_of(&self, exp: &Experiment, visitors: Vec<VisitorId>) -> Result<Attributes, StoreError> {
        let (id, phase) = (exp.id.as_str().to_owned(), phase_i32(exp.allocation_version));
        let visitors: Vec<String> = visitors.into_iter().map(VisitorId::into_string).collect();
        let rows = self
            .run(move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                Ok(client
                    .query(
                        "SELECT visitor, attributes::text FROM exposures
                         WHERE experiment = $1 AND phase = $2 AND visitor = ANY($3) AND attributes IS NOT NULL",
                        &[&id, &phase, &visitors],
                    )
                    .await?)
            })
            .await?;
        rows.iter()
            .map(|r| {
                let visitor = parsed(r, 0, "exposures", VisitorId::parse_owned)?;
                let attributes = attributes_json(r.get(1), || visitor.to_string())?;
                Ok((visitor, attributes))
            })
            .collect()
    }

    async fn verdicts_seen(&self) -> Result<BTreeMap<ExperimentId, String>, StoreError> {
        let rows = self
            .run(|pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                Ok(client.query("SELECT experiment, code FROM verdicts WHERE code IS NOT NULL", &[]).await?)
            })
            .await?;
        rows.iter().map(|r| Ok((parsed(r, 0, "verdicts", ExperimentId::parse_owned)?, r.get(1)))).collect()
    }

    /// The test's row is created when missing, then locked, so replicas
    /// comparing at once take turns and only the first records the change.
    async fn advance_verdict(
        &self,
        experiment: &ExperimentId,
        seen: Option<&str>,
        code: &str,
        deliveries: &[Delivery],
    ) -> Result<bool, StoreError> {
        let (id, seen, code) = (experiment.as_str().to_owned(), seen.map(str::to_owned), code.to_owned());
        let records: Vec<(String, DateTime<Utc>, String)> = deliveries
            .iter()
            .map(|d| (d.id.clone(), d.next_at, serde_json::to_string(d).expect("deliveries serialize")))
            .collect();
        self.run(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await?;
            tx.execute("INSERT INTO verdicts (experiment, code) VALUES ($1, NULL) ON CONFLICT DO NOTHING", &[&id])
                .await?;
            let stored: Option<String> =
                tx.query_one("SELECT code FROM verdicts WHERE experiment = $1 FOR UPDATE", &[&id]).await?.get(0);
            if stored != seen {
                return Ok(false);
            }
            tx.execute("UPDATE verdicts SET code = $2 WHERE experiment = $1", &[&id, &code]).await?;
            for (d, next_at, record) in &records {
                tx.execute(
                    "INSERT INTO deliveries (id, next_at, record) VALUES ($1, $2, $3::text::jsonb)",
                    &[d, next_at, record],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn take_delivery(
        &self,
        now: DateTime<Utc>,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<Delivery>, StoreError> {
        let holder = holder.to_owned();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let row = self
            .run(move |pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                Ok(client
                    .query_opt(
                        "UPDATE deliveries SET leased_by = $1, lease_until = $2
                         WHERE id = (SELECT id FROM deliveries
                                     WHERE next_at <= $3 AND (lease_until IS NULL OR lease_until < $3)
                                     ORDER BY next_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                         RETURNING id, record::text",
                        &[&holder, &until, &now],
                    )
                    .await?)
            })
            .await?;
        row.map(|r| {
            serde_json::from_str(r.get(1))
                .map_err(|e| StoreError::Corrupt(Corrupt { tree: "deliveries", key: r.get(0), detail: e.to_string() }))
        })
        .transpose()
    }

    async fn tried_delivery(&self, holder: &str, id: &str, after: AfterTry) -> Result<(), StoreError> {
        let (holder, id) = (holder.to_owned(), id.to_owned());
        self.run(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await?;
            match after {
                AfterTry::Again(d) => {
                    let record = serde_json::to_string(&d).expect("deliveries serialize");
                    tx.execute(
                        "UPDATE deliveries SET record = $3::text::jsonb, next_at = $4, leased_by = NULL, lease_until = NULL
                         WHERE id = $1 AND leased_by = $2",
                        &[&id, &holder, &record, &d.next_at],
                    )
                    .await?;
                }
                AfterTry::Done(last) => {
                    let removed =
                        tx.execute("DELETE FROM deliveries WHERE id = $1 AND leased_by = $2", &[&id, &holder]).await?;
                    if removed == 1 {
                        let record = serde_json::to_string(&last).expect("deliveries serialize");
                        tx.execute(
                            "INSERT INTO last_deliveries (webhook, record) VALUES ($1, $2::text::jsonb)
                             ON CONFLICT (webhook) DO UPDATE SET record = EXCLUDED.record",
                            &[&last.webhook, &record],
                        )
                        .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn last_deliveries(&self) -> Result<Vec<LastDelivery>, StoreError> {
        let rows = self
            .run(|pool| async move {
                let client = pool.get().await.map_err(pool_error)?;
                Ok(client.query("SELECT webhook, record::text FROM last_deliveries ORDER BY webhook", &[]).await?)
            })
            .await?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r.get(1)).map_err(|e| {
                    StoreError::Corrupt(Corrupt { tree: "last_deliveries", key: r.get(0), detail: e.to_string() })
                })
            })
            .collect()
    }

    /// Streams every raw row from one snapshot (a repeatable-read
    /// transaction on a maintenance connection), so the export is
    /// consistent while replicas keep writing.
    async fn export(&self) -> Result<super::Export, StoreError> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let config = self.maintenance.clone();
        self.runtime.spawn(async move {
            let failed = tx.clone();
            if let Err(e) = export_rows(config, tx).await {
                let _ = failed.send(Err(e)).await;
            }
        });
        Ok(rx)
    }

    /// In one transaction: the visitors' rows, then the raw rows as given.
    async fn import(&self, records: Vec<Record>) -> Result<(), StoreError> {
        self.maintain(move |mut client| async move {
            let tx = client.transaction().await?;
            let (mut exposures, mut events) = (Vec::new(), Vec::new());
            for r in &records {
                match r {
                    Record::Exposure(e) => exposures.push(e),
                    Record::Event(e) => events.push(e),
                    Record::Allocation { experiment, record } => {
                        let record = serde_json::to_string(record).expect("records serialize");
                        tx.execute(
                            "INSERT INTO allocations (experiment, record) VALUES ($1, $2::text::jsonb)",
                            &[&experiment.as_str(), &record],
                        )
                        .await?;
                    }
                    Record::Verdict { experiment, code } => {
                        tx.execute(
                            "INSERT INTO verdicts (experiment, code) VALUES ($1, $2)",
                            &[&experiment.as_str(), code],
                        )
                        .await?;
                    }
                }
            }
            let visitors: Vec<&str> =
                exposures.iter().map(|e| e.visitor.as_str()).chain(events.iter().map(|e| e.visitor.as_str())).collect();
            tx.execute(sql::INSERT_VISITORS, &[&visitors]).await?;
            tx.execute(sql::PUT_EXPOSURES, &ExposureColumns::of(&exposures).params()).await?;
            let e_params: (Vec<&str>, Vec<&str>, Vec<&str>, Vec<f64>, Vec<DateTime<Utc>>) = (
                events.iter().map(|e| e.id.as_str()).collect(),
                events.iter().map(|e| e.visitor.as_str()).collect(),
                events.iter().map(|e| e.name.as_str()).collect(),
                events.iter().map(|e| e.value).collect(),
                events.iter().map(|e| e.ts).collect(),
            );
            tx.execute(sql::PUT_EVENTS, &[&e_params.0, &e_params.1, &e_params.2, &e_params.3, &e_params.4]).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn all_capped(&self) -> Result<CappedIndex, StoreError> {
        let (counts, entries) = self
            .maintain(|client| async move {
                let counts = client
                    .query(
                        "SELECT experiment, phase, metric, covered, positive, negative, floor FROM capped_counts",
                        &[],
                    )
                    .await?;
                let entries = client
                    .query(
                        "SELECT experiment, phase, metric, visitor, variant, date, x, y, pre FROM capped_values",
                        &[],
                    )
                    .await?;
                Ok((counts, entries))
            })
            .await?;
        let scope = capped_scope_of;
        let mut index = CappedIndex::default();
        for r in &counts {
            let [covered, positive, negative] = [3, 4, 5].map(|i| u64::try_from(r.get::<_, i64>(i)).ok());
            let bad =
                || Corrupt { tree: "capped_counts", key: r.get::<_, String>(0), detail: "a negative count".into() };
            let counts = CappedCounts {
                covered: covered.ok_or_else(bad)?,
                positive: positive.ok_or_else(bad)?,
                negative: negative.ok_or_else(bad)?,
                floor: r.get(6),
            };
            index.counts.insert(scope(r, "capped_counts")?, counts);
        }
        for r in &entries {
            let key = || r.get::<_, String>(3);
            let entry = CappedEntry {
                variant: variant_at(r, 4, "capped_values", key)?,
                date: r.get(5),
                value: crate::stats::VisitorValue { x: r.get(6), y: r.get(7), pre: r.get(8) },
            };
            let visitor = parsed(r, 3, "capped_values", VisitorId::parse_owned)?;
            index.entries.insert((scope(r, "capped_values")?, visitor), entry);
        }
        Ok(index)
    }

    /// Reads every raw row in one snapshot, on a maintenance connection.
    async fn recompute(&self, catalog: &Catalog) -> Result<Recomputed, StoreError> {
        let (exposures, events) = self
            .maintain(|mut client| async move {
                let tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true);
                let tx = tx.start().await?;
                let rows = (tx.query(sql::ALL_EXPOSURES, &[]).await?, tx.query(sql::ALL_EVENTS, &[]).await?);
                tx.commit().await?;
                Ok(rows)
            })
            .await?;
        recomputed(catalog, &exposures, &events)
    }

    /// In one transaction: the raw tables locked against writes (a replica
    /// still running waits), tallies, aggregates and value indexes replaced
    /// by a recomputation, on a maintenance connection: at millions of
    /// visitors its statements, and the pause while the recomputation runs
    /// here, take minutes.
    async fn rebuild(&self, catalog: &Catalog) -> Result<usize, StoreError> {
        let catalog = catalog.clone();
        self.maintain(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.batch_execute(
                "LOCK TABLE exposures, events, tallies, aggregates, segment_aggregates, capped_values, capped_counts
                 IN EXCLUSIVE MODE",
            )
            .await?;
            let exposures = tx.query(sql::ALL_EXPOSURES, &[]).await?;
            let events = tx.query(sql::ALL_EVENTS, &[]).await?;
            let Recomputed { aggregates, segments, tallies, capped } = recomputed(&catalog, &exposures, &events)?;
            let rows = aggregates.len();
            tx.batch_execute(
                "DELETE FROM tallies; DELETE FROM aggregates; DELETE FROM segment_aggregates;
                 DELETE FROM capped_values; DELETE FROM capped_counts",
            )
            .await?;
            let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let delta = |m: Moments| overlay::Delta { n: signed(m.n), sums: m };
            let aggregates = aggregates.into_iter().map(|(k, m)| (k, delta(m))).collect();
            let segments = segments.into_iter().map(|(k, m)| (k, delta(m))).collect();
            let capped_counts =
                capped.counts.into_iter().map(|(k, c)| (k, [c.covered, c.positive, c.negative].map(signed))).collect();
            let capped = capped.entries.into_iter().map(|(k, e)| (k, Some(e))).collect();
            let changes = Changes {
                exposures: Vec::new(),
                events: Vec::new(),
                tallies,
                aggregates,
                segments,
                capped,
                capped_counts,
            };
            let prepared = futures_util::future::try_join_all(sql::WRITE_BACK.map(|q| tx.prepare(q))).await?;
            write_back(&tx, &prepared, changes).await?;
            tx.commit().await?;
            Ok(rows)
        })
        .await
    }

    /// Stops taking writes and waits, at most the write deadline twice
    /// over, until every queued one is committed or answered.
    async fn close(&self) -> Result<(), StoreError> {
        self.engine.close(CLOSE_GRACE).await
    }
}

/// A store dropped unclosed stops taking writes; its writer still commits
/// what was queued.
impl Drop for PgStore {
    fn drop(&mut self) {
        self.engine.stop();
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => StoreError::Postgres(e),
        other => StoreError::Unavailable(format!("no PostgreSQL connection: {other}")),
    }
}

fn phase_i32(phase: u32) -> i32 {
    i32::try_from(phase).unwrap_or(i32::MAX)
}

/// The rows of [`Store::export`], sent in chunks.
async fn export_rows(
    config: tokio_postgres::Config,
    out: tokio::sync::mpsc::Sender<Result<Vec<Record>, StoreError>>,
) -> Result<(), StoreError> {
    use futures_util::TryStreamExt;
    let (mut client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    let tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true);
    let tx = tx.start().await?;
    let mut chunk = Vec::with_capacity(super::RECORD_CHUNK);
    let gone = || StoreError::Internal("the backup's reader went away".into());
    let none: [&(dyn ToSql + Sync); 0] = [];
    let rows = tx.query_raw(sql::ALL_EXPOSURES, none).await?;
    futures_util::pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        chunk.push(Record::Exposure(exposure_of(&r)?));
        if chunk.len() == super::RECORD_CHUNK {
            out.send(Ok(std::mem::take(&mut chunk))).await.map_err(|_| gone())?;
        }
    }
    let rows = tx.query_raw(sql::ALL_EVENTS, none).await?;
    futures_util::pin_mut!(rows);
    while let Some(r) = rows.try_next().await? {
        chunk.extend(events_of(std::slice::from_ref(&r))?.into_iter().map(Record::Event));
        if chunk.len() == super::RECORD_CHUNK {
            out.send(Ok(std::mem::take(&mut chunk))).await.map_err(|_| gone())?;
        }
    }
    for r in tx.query("SELECT experiment, record::text FROM allocations ORDER BY experiment", &[]).await? {
        let experiment = parsed(&r, 0, "allocations", ExperimentId::parse_owned)?;
        let record = serde_json::from_str(r.get(1)).map_err(|e| Corrupt {
            tree: "allocations",
            key: experiment.to_string(),
            detail: e.to_string(),
        })?;
        chunk.push(Record::Allocation { experiment, record });
    }
    for r in tx.query("SELECT experiment, code FROM verdicts WHERE code IS NOT NULL ORDER BY experiment", &[]).await? {
        chunk.push(Record::Verdict {
            experiment: parsed(&r, 0, "verdicts", ExperimentId::parse_owned)?,
            code: r.get(1),
        });
    }
    tx.commit().await?;
    out.send(Ok(chunk)).await.map_err(|_| gone())?;
    Ok(())
}

/// Longest [`Store::close`] waits for queued writes.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Every visitor's exposures and events, in byte order of the visitor, fed
/// to [`Recomputed`] one visitor at a time.
fn recomputed(
    catalog: &Catalog,
    exposures: &[tokio_postgres::Row],
    events: &[tokio_postgres::Row],
) -> Result<Recomputed, StoreError> {
    let exposures: Vec<Exposure> = exposures.iter().map(exposure_of).collect::<Result<_, _>>()?;
    let events = events_of(events)?;
    let mut out = Recomputed::default();
    let mut rest = events.as_slice();
    for group in exposures.chunk_by(|a, b| a.visitor == b.visitor) {
        let visitor = group[0].visitor.as_str().as_bytes();
        let skip = rest.iter().take_while(|e| e.visitor.as_str().as_bytes() < visitor).count();
        rest = &rest[skip..];
        let own = rest.iter().take_while(|e| e.visitor.as_str().as_bytes() == visitor).count();
        out.visitor(catalog, group, &rest[..own]);
        rest = &rest[own..];
    }
    Ok(out)
}

/// Errors after which the group is tried again from the start. Event ids
/// are unique per visitor and a group holds its visitors' row locks, so no
/// other replica can store one of its ids meanwhile: a unique violation
/// would be a bug, and is not retried.
const RETRYABLE: [SqlState; 2] = [SqlState::T_R_DEADLOCK_DETECTED, SqlState::T_R_SERIALIZATION_FAILURE];

async fn commit_with_retries(pool: &Pool, jobs: &[Pending]) -> Result<Vec<Vec<Outcome>>, StoreError> {
    let mut tries = 0;
    loop {
        match commit_once(pool, jobs).await {
            Err(StoreError::Postgres(e)) if tries < RETRIES && matches!(e.code(), Some(c) if RETRYABLE.contains(c)) => {
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Every statement of a group commit, prepared once per connection.
mod sql {
    pub const INSERT_VISITORS: &str = "INSERT INTO visitors (visitor)
         SELECT v FROM unnest($1::text[]) AS v ORDER BY v COLLATE \"C\" ON CONFLICT DO NOTHING";
    pub const LOCK_VISITORS: &str =
        "SELECT visitor FROM visitors WHERE visitor = ANY($1) ORDER BY visitor COLLATE \"C\" FOR UPDATE";
    pub const EXPOSURES: &str =
        "SELECT visitor, experiment, phase, variant, ts, attributes::text FROM exposures WHERE visitor = ANY($1)";
    pub const TALLIES: &str = "SELECT experiment, phase, visitor, tallies::text FROM tallies WHERE visitor = ANY($1)";
    pub const EVENTS_OF: &str = "SELECT id, visitor, name, value, ts FROM events WHERE visitor = ANY($1)";
    pub const ALL_EXPOSURES: &str =
        "SELECT visitor, experiment, phase, variant, ts, attributes::text FROM exposures ORDER BY visitor COLLATE \"C\"";
    pub const ALL_EVENTS: &str =
        "SELECT id, visitor, name, value, ts FROM events ORDER BY visitor COLLATE \"C\", ts, id";
    /// The group's (visitor, id) pairs that are stored: one lookup of the
    /// key per pair. `OFFSET 0` keeps the subquery a lookup per pair:
    /// pulled up into a join with the unnested pairs (as `IN` or a plain
    /// join are) it was planned as a scan of every event once the plan was
    /// cached on a small table, and `visitor = ANY AND id = ANY` probes
    /// every visitor with every id, which a batch makes thousands squared.
    pub const EVENTS_BY_ID: &str = "SELECT e.id, e.visitor, e.name, e.value, e.ts
         FROM unnest($1::text[], $2::text[]) AS u(visitor, id),
              LATERAL (SELECT * FROM events WHERE visitor = u.visitor AND id = u.id OFFSET 0) AS e";
    pub const PUT_EXPOSURES: &str = "INSERT INTO exposures (visitor, experiment, phase, variant, ts, attributes)
         SELECT v, e, p, x, t, a::jsonb
         FROM unnest($1::text[], $2::text[], $3::int4[], $4::int2[], $5::timestamptz[], $6::text[]) AS u(v, e, p, x, t, a)
         ON CONFLICT (visitor, experiment, phase)
         DO UPDATE SET variant = EXCLUDED.variant, ts = EXCLUDED.ts, attributes = EXCLUDED.attributes";
    pub const PUT_EVENTS: &str = "INSERT INTO events (id, visitor, name, value, ts)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::timestamptz[])";
    pub const PUT_TALLIES: &str = "INSERT INTO tallies (experiment, phase, visitor, tallies)
         SELECT e, p, v, t::jsonb FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[]) AS u(e, p, v, t)
         ON CONFLICT (visitor, experiment, phase) DO UPDATE SET tallies = EXCLUDED.tallies";
    pub const ADD_AGGREGATES: &str = "INSERT INTO aggregates AS a
             (experiment, phase, variant, date, metric, n, sum, sum_sq, den_sum, den_sum_sq, sum_xy,
              pre_sum, pre_sum_sq, sum_x_pre)
         SELECT * FROM unnest($1::text[], $2::int4[], $3::int2[], $4::date[], $5::text[], $6::int8[],
                              $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[],
                              $12::float8[], $13::float8[], $14::float8[])
         ON CONFLICT (experiment, phase, variant, date, metric) DO UPDATE SET
             n = a.n + EXCLUDED.n, sum = a.sum + EXCLUDED.sum, sum_sq = a.sum_sq + EXCLUDED.sum_sq,
             den_sum = a.den_sum + EXCLUDED.den_sum, den_sum_sq = a.den_sum_sq + EXCLUDED.den_sum_sq,
             sum_xy = a.sum_xy + EXCLUDED.sum_xy, pre_sum = a.pre_sum + EXCLUDED.pre_sum,
             pre_sum_sq = a.pre_sum_sq + EXCLUDED.pre_sum_sq, sum_x_pre = a.sum_x_pre + EXCLUDED.sum_x_pre";
    pub const PUT_CAPPED: &str =
        "INSERT INTO capped_values (experiment, phase, metric, visitor, variant, date, x, y, pre)
         SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::int2[], $6::date[],
                              $7::float8[], $8::float8[], $9::float8[])
         ON CONFLICT (experiment, phase, metric, visitor) DO UPDATE SET
             variant = EXCLUDED.variant, date = EXCLUDED.date, x = EXCLUDED.x, y = EXCLUDED.y, pre = EXCLUDED.pre";
    pub const DROP_CAPPED: &str = "DELETE FROM capped_values c
         USING unnest($1::text[], $2::int4[], $3::text[], $4::text[]) AS k(e, p, m, v)
         WHERE c.experiment = k.e AND c.phase = k.p AND c.metric = k.m AND c.visitor = k.v";
    pub const ADD_CAPPED_COUNTS: &str = "INSERT INTO capped_counts AS c
             (experiment, phase, metric, covered, positive, negative)
         SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::int8[], $5::int8[], $6::int8[])
         ON CONFLICT (experiment, phase, metric) DO UPDATE SET covered = c.covered + EXCLUDED.covered,
             positive = c.positive + EXCLUDED.positive, negative = c.negative + EXCLUDED.negative";
    /// Values of the value side above the floor from the top, by rank;
    /// `x <> 0` lets the side's partial index answer.
    pub const CAPPED_VALUES: &str = "SELECT x FROM capped_values
         WHERE experiment = $1 AND phase = $2 AND metric = $3 AND x <> 0 AND x > $4
         ORDER BY x DESC OFFSET $5 LIMIT $6";
    /// Raises an index's floor (never lowers it); one row when it did.
    pub const RAISE_FLOOR: &str = "UPDATE capped_counts SET floor = $4
         WHERE experiment = $1 AND phase = $2 AND metric = $3 AND (floor IS NULL OR floor < $4)";
    /// Drops the rows the floor leaves with no side to keep.
    pub const SWEEP_BELOW_FLOOR: &str = "DELETE FROM capped_values
         WHERE experiment = $1 AND phase = $2 AND metric = $3 AND x <= $4 AND pre <= $4";
    /// Every index's floor, for the writer's rules.
    pub const FLOORS: &str = "SELECT experiment, phase, metric, floor FROM capped_counts WHERE floor IS NOT NULL";
    /// The entries of one side above a value, from the top; `x <> 0` (or
    /// `pre <> 0`) lets the side's partial index answer.
    pub fn capped_top(column: &str) -> String {
        format!(
            "SELECT visitor, variant, date, x, y, pre FROM capped_values
             WHERE experiment = $1 AND phase = $2 AND metric = $3 AND {column} <> 0 AND {column} > $4
             ORDER BY {column} DESC"
        )
    }
    /// What `write_back` runs, in the order it indexes them.
    pub const WRITE_BACK: [&str; 10] = [
        PUT_EXPOSURES,
        PUT_EVENTS,
        PUT_TALLIES,
        ADD_AGGREGATES,
        DROP_EMPTY_AGGREGATES,
        DROP_CAPPED,
        PUT_CAPPED,
        ADD_CAPPED_COUNTS,
        ADD_SEGMENTS,
        DROP_EMPTY_SEGMENTS,
    ];
    pub const DROP_EMPTY_AGGREGATES: &str = "DELETE FROM aggregates a
         USING unnest($1::text[], $2::int4[], $3::int2[], $4::date[], $5::text[]) AS k(e, p, v, d, m)
         WHERE a.experiment = k.e AND a.phase = k.p AND a.variant = k.v AND a.date = k.d AND a.metric = k.m
           AND a.n <= 0";
    pub const ADD_SEGMENTS: &str = "INSERT INTO segment_aggregates AS a
             (experiment, phase, variant, metric, attribute, value, n, sum, sum_sq, den_sum, den_sum_sq,
              sum_xy, pre_sum, pre_sum_sq, sum_x_pre)
         SELECT * FROM unnest($1::text[], $2::int4[], $3::int2[], $4::text[], $5::text[], $6::text[],
                              $7::int8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[],
                              $12::float8[], $13::float8[], $14::float8[], $15::float8[])
         ON CONFLICT (experiment, phase, attribute, value, variant, metric) DO UPDATE SET
             n = a.n + EXCLUDED.n, sum = a.sum + EXCLUDED.sum, sum_sq = a.sum_sq + EXCLUDED.sum_sq,
             den_sum = a.den_sum + EXCLUDED.den_sum, den_sum_sq = a.den_sum_sq + EXCLUDED.den_sum_sq,
             sum_xy = a.sum_xy + EXCLUDED.sum_xy, pre_sum = a.pre_sum + EXCLUDED.pre_sum,
             pre_sum_sq = a.pre_sum_sq + EXCLUDED.pre_sum_sq, sum_x_pre = a.sum_x_pre + EXCLUDED.sum_x_pre";
    pub const DROP_EMPTY_SEGMENTS: &str = "DELETE FROM segment_aggregates a
         USING unnest($1::text[], $2::int4[], $3::int2[], $4::text[], $5::text[], $6::text[])
             AS k(e, p, v, m, at, va)
         WHERE a.experiment = k.e AND a.phase = k.p AND a.variant = k.v AND a.metric = k.m
           AND a.attribute = k.at AND a.value = k.va AND a.n <= 0";
}

/// One transaction: lock, read, apply the rules in memory, write back,
/// commit. Statements are prepared once per connection and sent
/// pipelined: PostgreSQL runs them in order, so the reads still run after
/// the locks are held, and a group costs about three round trips.
async fn commit_once(pool: &Pool, jobs: &[Pending]) -> Result<Vec<Vec<Outcome>>, StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await?;
    let needs = Needs::of(jobs.iter().flat_map(|j| &j.writes));
    let prepared = futures_util::future::try_join_all(
        [
            sql::INSERT_VISITORS,
            sql::LOCK_VISITORS,
            sql::EXPOSURES,
            sql::TALLIES,
            sql::EVENTS_OF,
            sql::EVENTS_BY_ID,
            sql::FLOORS,
        ]
        .map(|q| tx.prepare_cached(q)),
    )
    .await?;
    let visitors: Vec<&str> = needs.visitors.iter().map(VisitorId::as_str).collect();
    let history: Vec<&str> = needs.history.iter().map(VisitorId::as_str).collect();
    let id_visitors: Vec<&str> = needs.event_ids.iter().map(|(v, _)| v.as_str()).collect();
    let ids: Vec<&str> = needs.event_ids.iter().map(|(_, id)| id.as_str()).collect();
    let visitors: [&(dyn ToSql + Sync); 1] = [&visitors];
    let history: [&(dyn ToSql + Sync); 1] = [&history];
    let ids: [&(dyn ToSql + Sync); 2] = [&id_visitors, &ids];
    // The visitors' rows, created when new, then locked in byte order;
    // then what the rules read of them.
    let (_, _, exposures, tallies, history, known, floors) = tokio::try_join!(
        tx.execute(&prepared[0], &visitors),
        tx.execute(&prepared[1], &visitors),
        tx.query(&prepared[2], &visitors),
        tx.query(&prepared[3], &visitors),
        tx.query(&prepared[4], &history),
        tx.query(&prepared[5], &ids),
        tx.query(&prepared[6], &[]),
    )?;
    let exposures = exposures.iter().map(exposure_of).collect::<Result<_, _>>()?;
    let tallies = tallies.iter().map(tallies_of).collect::<Result<_, _>>()?;
    let floors = floors
        .iter()
        .map(|r| Ok((capped_scope_of(r, "capped_counts")?, r.get(3))))
        .collect::<Result<_, StoreError>>()?;
    let overlay = Overlay::new(&needs, exposures, tallies, events_of(&history)?, events_of(&known)?, floors);
    let (outcomes, changes) = run_rules(jobs, overlay)?;
    let prepared = futures_util::future::try_join_all(sql::WRITE_BACK.map(|q| tx.prepare_cached(q))).await?;
    write_back(&tx, &prepared, changes).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// The rules, in memory, over the rows read (no await inside: the overlay
/// never crosses one).
fn run_rules(jobs: &[Pending], overlay: Overlay) -> Result<(Vec<Vec<Outcome>>, Changes), StoreError> {
    let outcomes = jobs
        .iter()
        .map(|job| job.writes.iter().map(|w| apply(&overlay, &job.catalog, w)).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    Ok((outcomes, overlay.into_changes()))
}

/// Text column `i` of a stored row of `tree`, parsed into its type: text
/// that does not parse is corrupt, never used as it is.
fn parsed<T>(
    r: &tokio_postgres::Row,
    i: usize,
    tree: &'static str,
    parse: fn(String) -> Result<T, String>,
) -> Result<T, Corrupt> {
    let text: String = r.get(i);
    parse(text.clone()).map_err(|detail| Corrupt { tree, key: format!("{text:?}"), detail })
}

/// A stored variant index; one out of range (negative, say) is corrupt,
/// never read as 0 (which would count the visitor in the control).
fn variant_at(
    r: &tokio_postgres::Row,
    i: usize,
    tree: &'static str,
    key: impl FnOnce() -> String,
) -> Result<VariantIndex, Corrupt> {
    let stored: i16 = r.get(i);
    VariantIndex::from_sql(stored).ok_or_else(|| Corrupt {
        tree,
        key: key(),
        detail: format!("variant {stored} is out of range"),
    })
}

/// A stored phase; a negative one is corrupt, never read as 0.
fn phase_at(
    r: &tokio_postgres::Row,
    i: usize,
    tree: &'static str,
    key: impl FnOnce() -> String,
) -> Result<u32, Corrupt> {
    let stored: i32 = r.get(i);
    u32::try_from(stored).map_err(|_| Corrupt { tree, key: key(), detail: format!("phase {stored} is negative") })
}

/// The (test, phase, metric) of a row of `capped_counts` or
/// `capped_values`, in its first three columns.
fn capped_scope_of(r: &tokio_postgres::Row, table: &'static str) -> Result<CappedScope, Corrupt> {
    let key = || format!("{}/{}/{}", r.get::<_, &str>(0), r.get::<_, i32>(1), r.get::<_, &str>(2));
    Ok(CappedScope {
        experiment: parsed(r, 0, table, ExperimentId::parse_owned)?,
        phase: phase_at(r, 1, table, key)?,
        metric: parsed(r, 2, table, MetricName::parse_owned)?,
    })
}

/// A stored exposure.
fn exposure_of(r: &tokio_postgres::Row) -> Result<Exposure, StoreError> {
    let key = || format!("{}/{}", r.get::<_, &str>(0), r.get::<_, &str>(1));
    Ok(Exposure {
        visitor: parsed(r, 0, "exposures", VisitorId::parse_owned)?,
        experiment: parsed(r, 1, "exposures", ExperimentId::parse_owned)?,
        phase: phase_at(r, 2, "exposures", key)?,
        variant: variant_at(r, 3, "exposures", key)?,
        ts: r.get(4),
        attributes: attributes_json(r.get(5), key)?,
    })
}

/// The key columns of a row of `aggregates` (with its day) or of
/// `segment_aggregates` (with its attribute and value instead).
struct RowKey<'a> {
    experiment: &'a str,
    phase: i32,
    variant: i16,
    metric: &'a str,
    date: Option<NaiveDate>,
    segment: Option<(&'a str, &'a str)>,
}

impl<'a> RowKey<'a> {
    fn of(k: &'a AggregateKey) -> Self {
        let (experiment, phase, variant, metric) =
            (k.experiment.as_str(), phase_i32(k.phase), k.variant.to_sql(), k.metric.as_str());
        RowKey { experiment, phase, variant, metric, date: Some(k.date), segment: None }
    }

    fn of_segment(k: &'a SegmentKey) -> Self {
        let (experiment, phase, variant, metric) =
            (k.experiment.as_str(), phase_i32(k.phase), k.variant.to_sql(), k.metric.as_str());
        RowKey { experiment, phase, variant, metric, date: None, segment: Some((&k.attribute, &k.value)) }
    }
}

/// Rows' keys and summed changes as the columns of [`sql::ADD_AGGREGATES`]
/// (test, phase, variant, date, metric) or of [`sql::ADD_SEGMENTS`] (test,
/// phase, variant, metric, attribute, value), then `n` and the sums.
struct RowColumns<'a> {
    experiments: Vec<&'a str>,
    phases: Vec<i32>,
    variants: Vec<i16>,
    dates: Vec<NaiveDate>,
    metrics: Vec<&'a str>,
    attributes: Vec<&'a str>,
    values: Vec<&'a str>,
    /// Whether these are segment rows.
    segments: bool,
    n: Vec<i64>,
    sums: [Vec<f64>; 8],
}

impl<'a> RowColumns<'a> {
    fn of(segments: bool, rows: impl Iterator<Item = (RowKey<'a>, &'a overlay::Delta)>) -> Self {
        let (keys, deltas): (Vec<RowKey>, Vec<&overlay::Delta>) = rows.unzip();
        let d: Vec<[f64; 8]> = deltas.iter().map(|x| x.sums.sums()).collect();
        RowColumns {
            experiments: keys.iter().map(|k| k.experiment).collect(),
            phases: keys.iter().map(|k| k.phase).collect(),
            variants: keys.iter().map(|k| k.variant).collect(),
            dates: keys.iter().filter_map(|k| k.date).collect(),
            metrics: keys.iter().map(|k| k.metric).collect(),
            attributes: keys.iter().filter_map(|k| k.segment.map(|s| s.0)).collect(),
            values: keys.iter().filter_map(|k| k.segment.map(|s| s.1)).collect(),
            segments,
            n: deltas.iter().map(|x| x.n).collect(),
            sums: std::array::from_fn(|i| d.iter().map(|s| s[i]).collect()),
        }
    }

    fn keys(&self) -> Vec<&(dyn ToSql + Sync)> {
        match self.segments {
            true => {
                vec![&self.experiments, &self.phases, &self.variants, &self.metrics, &self.attributes, &self.values]
            }
            false => vec![&self.experiments, &self.phases, &self.variants, &self.dates, &self.metrics],
        }
    }

    /// The key, then `n` and the sums.
    fn with_sums(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut out = self.keys();
        out.push(&self.n);
        out.extend(self.sums.iter().map(|s| s as &(dyn ToSql + Sync)));
        out
    }
}

/// A group's exposures as the columns of [`sql::PUT_EXPOSURES`].
struct ExposureColumns<'a> {
    visitors: Vec<&'a str>,
    experiments: Vec<&'a str>,
    phases: Vec<i32>,
    variants: Vec<i16>,
    ts: Vec<DateTime<Utc>>,
    /// JSON objects; `None` (NULL) for an exposure without attributes.
    attributes: Vec<Option<String>>,
}

impl<'a> ExposureColumns<'a> {
    fn of<E: std::borrow::Borrow<Exposure>>(x: &'a [E]) -> Self {
        let x = || x.iter().map(E::borrow);
        ExposureColumns {
            visitors: x().map(|e| e.visitor.as_str()).collect(),
            experiments: x().map(|e| e.experiment.as_str()).collect(),
            phases: x().map(|e| phase_i32(e.phase)).collect(),
            variants: x().map(|e| e.variant.to_sql()).collect(),
            ts: x().map(|e| e.ts).collect(),
            attributes: x()
                .map(|e| {
                    (!e.attributes.is_empty())
                        .then(|| serde_json::to_string(&e.attributes).expect("attributes serialize"))
                })
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.visitors.is_empty()
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [&self.visitors, &self.experiments, &self.phases, &self.variants, &self.ts, &self.attributes]
    }
}

/// The aggregate key of a row whose first five columns are experiment,
/// phase, variant, date and metric.
fn aggregate_key_at(r: &tokio_postgres::Row, table: &'static str) -> Result<AggregateKey, StoreError> {
    let key = || format!("{}/{}/{}", r.get::<_, &str>(0), r.get::<_, i32>(1), r.get::<_, i16>(2));
    Ok(AggregateKey {
        experiment: parsed(r, 0, table, ExperimentId::parse_owned)?,
        phase: phase_at(r, 1, table, key)?,
        variant: variant_at(r, 2, table, key)?,
        date: r.get(3),
        metric: parsed(r, 4, table, MetricName::parse_owned)?,
    })
}

/// A segment row: experiment, phase, variant, metric, attribute, value,
/// then the sums.
fn segment_row(r: &tokio_postgres::Row) -> Result<(SegmentKey, Moments), StoreError> {
    let table = "segment_aggregates";
    let key = || format!("{}/{}/{}", r.get::<_, &str>(0), r.get::<_, i32>(1), r.get::<_, i16>(2));
    let key = SegmentKey {
        experiment: parsed(r, 0, table, ExperimentId::parse_owned)?,
        phase: phase_at(r, 1, table, key)?,
        variant: variant_at(r, 2, table, key)?,
        metric: parsed(r, 3, table, MetricName::parse_owned)?,
        attribute: r.get(4),
        value: r.get(5),
    };
    Ok((key, moments_at(r, 6)))
}

/// One exposed visitor of [`Store::visit_tallies`]'s query: the first
/// exposure's variant and time, the tallies, and with `attributes` the
/// segment attributes it kept.
fn visitor_tallies(r: &tokio_postgres::Row, attributes: bool) -> Result<super::OwnedTallies, StoreError> {
    let visitor = || r.get::<_, String>(2);
    let tallies = tallies_json(r.get(3), visitor)?;
    let kept = attributes_json(r.get::<_, Option<&str>>(4).filter(|_| attributes), visitor)?;
    Ok((variant_at(r, 0, "exposures", visitor)?, r.get(1), tallies, kept))
}

/// A stored row of tallies.
fn tallies_of(r: &tokio_postgres::Row) -> Result<(TallyKey, Tallies), StoreError> {
    let key = || format!("{}/{}/{}", r.get::<_, &str>(0), r.get::<_, i32>(1), r.get::<_, &str>(2));
    let tallies = tallies_json(r.get(3), key)?;
    let key = TallyKey {
        experiment: parsed(r, 0, "tallies", ExperimentId::parse_owned)?,
        phase: phase_at(r, 1, "tallies", key)?,
        visitor: parsed(r, 2, "tallies", VisitorId::parse_owned)?,
    };
    Ok((key, tallies))
}

/// Tallies as stored, JSON text; `key` names the row when they do not
/// decode.
fn tallies_json(text: &str, key: impl FnOnce() -> String) -> Result<Tallies, Corrupt> {
    serde_json::from_str(text).map_err(|e| Corrupt { tree: "tallies", key: key(), detail: e.to_string() })
}

/// An exposure's stored segment attributes (a JSON object; none for NULL).
fn attributes_json(text: Option<&str>, key: impl FnOnce() -> String) -> Result<BTreeMap<String, String>, Corrupt> {
    text.map_or(Ok(BTreeMap::new()), |text| {
        serde_json::from_str(text).map_err(|e| Corrupt {
            tree: "exposures",
            key: key(),
            detail: format!("attributes: {e}"),
        })
    })
}

/// Stored events.
fn events_of(rows: &[tokio_postgres::Row]) -> Result<Vec<Event>, Corrupt> {
    rows.iter()
        .map(|r| {
            Ok(Event {
                id: parsed(r, 0, "events", EventId::parse_owned)?,
                visitor: parsed(r, 1, "events", VisitorId::parse_owned)?,
                name: parsed(r, 2, "events", EventName::parse_owned)?,
                value: r.get(3),
                ts: r.get(4),
            })
        })
        .collect()
}

/// The key columns of value-index entries: test, phase, metric, visitor.
type CappedKeyColumns<'a> = (Vec<&'a str>, Vec<i32>, Vec<&'a str>, Vec<&'a str>);

fn capped_key_columns<'a>(list: &[(&'a (CappedScope, VisitorId), &'a Option<CappedEntry>)]) -> CappedKeyColumns<'a> {
    let experiments = list.iter().map(|((s, _), _)| s.experiment.as_str()).collect();
    let phases = list.iter().map(|((s, _), _)| phase_i32(s.phase)).collect();
    let metrics = list.iter().map(|((s, _), _)| s.metric.as_str()).collect();
    let visitors = list.iter().map(|((_, v), _)| v.as_str()).collect();
    (experiments, phases, metrics, visitors)
}

/// Writes a group's changes: raw rows and tallies of the locked visitors,
/// then the aggregate increments in key order; rows left with no visitor
/// are removed. Sent pipelined, run in this order.
///
/// `prepared` holds [`sql::WRITE_BACK`], prepared on `tx`'s connection.
async fn write_back(
    tx: &tokio_postgres::Transaction<'_>,
    prepared: &[tokio_postgres::Statement],
    c: Changes,
) -> Result<(), StoreError> {
    let x = ExposureColumns::of(&c.exposures);
    let e = &c.events;
    let e_ids: Vec<&str> = e.iter().map(|e| e.id.as_str()).collect();
    let e_visitors: Vec<&str> = e.iter().map(|e| e.visitor.as_str()).collect();
    let e_names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
    let e_values: Vec<f64> = e.iter().map(|e| e.value).collect();
    let e_ts: Vec<DateTime<Utc>> = e.iter().map(|e| e.ts).collect();

    let t = &c.tallies;
    let t_experiments: Vec<&str> = t.iter().map(|(k, _)| k.experiment.as_str()).collect();
    let t_phases: Vec<i32> = t.iter().map(|(k, _)| phase_i32(k.phase)).collect();
    let t_visitors: Vec<&str> = t.iter().map(|(k, _)| k.visitor.as_str()).collect();
    let t_json: Vec<String> = t.iter().map(|(_, t)| serde_json::to_string(t).expect("tallies serialize")).collect();

    // In key order: the order every replica locks aggregate rows in.
    let a = RowColumns::of(false, c.aggregates.iter().map(|(k, d)| (RowKey::of(k), d)));
    let g = RowColumns::of(true, c.segments.iter().map(|(k, d)| (RowKey::of_segment(k), d)));
    let x_params = x.params();
    let e_params: [&(dyn ToSql + Sync); 5] = [&e_ids, &e_visitors, &e_names, &e_values, &e_ts];
    let t_params: [&(dyn ToSql + Sync); 4] = [&t_experiments, &t_phases, &t_visitors, &t_json];
    let key_columns = a.keys();
    let add = a.with_sums();
    let g_keys = g.keys();
    let add_segments = g.with_sums();
    let (kept, dropped): (Vec<_>, Vec<_>) = c.capped.iter().partition(|(_, e)| e.is_some());
    let (k_experiments, k_phases, k_metrics, k_visitors) = capped_key_columns(&kept);
    let entries: Vec<&CappedEntry> = kept.iter().filter_map(|(_, e)| e.as_ref()).collect();
    let k_variants: Vec<i16> = entries.iter().map(|e| e.variant.to_sql()).collect();
    let k_dates: Vec<NaiveDate> = entries.iter().map(|e| e.date).collect();
    let k_x: Vec<f64> = entries.iter().map(|e| e.value.x).collect();
    let k_y: Vec<f64> = entries.iter().map(|e| e.value.y).collect();
    let k_pre: Vec<f64> = entries.iter().map(|e| e.value.pre).collect();
    let (d_experiments, d_phases, d_metrics, d_visitors) = capped_key_columns(&dropped);
    let n = &c.capped_counts;
    let n_experiments: Vec<&str> = n.keys().map(|s| s.experiment.as_str()).collect();
    let n_phases: Vec<i32> = n.keys().map(|s| phase_i32(s.phase)).collect();
    let n_metrics: Vec<&str> = n.keys().map(|s| s.metric.as_str()).collect();
    let [n_covered, n_positive, n_negative]: [Vec<i64>; 3] =
        std::array::from_fn(|i| n.values().map(|d| d[i]).collect());
    let put_capped: [&(dyn ToSql + Sync); 9] =
        [&k_experiments, &k_phases, &k_metrics, &k_visitors, &k_variants, &k_dates, &k_x, &k_y, &k_pre];
    let drop_capped: [&(dyn ToSql + Sync); 4] = [&d_experiments, &d_phases, &d_metrics, &d_visitors];
    let add_counts: [&(dyn ToSql + Sync); 6] =
        [&n_experiments, &n_phases, &n_metrics, &n_covered, &n_positive, &n_negative];
    type Statement<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;
    let mut statements: Vec<Statement<'_>> = Vec::new();
    if !x.is_empty() {
        statements.push(Box::pin(tx.execute(&prepared[0], &x_params)));
    }
    if !e.is_empty() {
        statements.push(Box::pin(tx.execute(&prepared[1], &e_params)));
    }
    if !t.is_empty() {
        statements.push(Box::pin(tx.execute(&prepared[2], &t_params)));
    }
    // The visitors' own rows first, then the rows every group shares
    // (aggregates, segment rows, an index's counts): a shared row stays
    // locked from its statement to the commit, so the other replicas'
    // groups wait for only what comes after it.
    if !dropped.is_empty() {
        statements.push(Box::pin(tx.execute(&prepared[5], &drop_capped)));
    }
    if !kept.is_empty() {
        statements.push(Box::pin(tx.execute(&prepared[6], &put_capped)));
    }
    if !a.n.is_empty() {
        statements.push(Box::pin(tx.execute(&prepared[3], &add)));
    }
    if a.n.iter().any(|&n| n < 0) {
        statements.push(Box::pin(tx.execute(&prepared[4], &key_columns)));
    }
    if !g.n.is_empty() {
        statements.push(Box::pin(tx.execute(&prepared[8], &add_segments)));
    }
    if g.n.iter().any(|&n| n < 0) {
        statements.push(Box::pin(tx.execute(&prepared[9], &g_keys)));
    }
    if !n.is_empty() {
        statements.push(Box::pin(tx.execute(&prepared[7], &add_counts)));
    }
    futures_util::future::try_join_all(statements).await?;
    Ok(())
}
