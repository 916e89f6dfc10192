//! Durable storage of exposures and events in sled, with the per-day
//! aggregates kept current on every write.
//!
//! One writer thread owns every write. It takes all requests waiting in its
//! queue and applies the whole group in one sled transaction over all trees
//! (raw records, per-visitor lists, tallies and aggregates change together
//! or not at all), then flushes once and only then answers: a 2xx reply
//! means the write is on disk, and concurrent requests share one fsync
//! (group commit). Every read a write needs is a point read inside that
//! transaction, so later items of a group see the earlier ones.
//!
//! Raw exposures and events are the source of truth: [`Store::rebuild`]
//! recomputes tallies and aggregates from them.

pub mod keys;
pub mod trees;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional, UnabortableTransactionError};

use crate::aggregates::AggregateRow;
use crate::allocation::AllocationRecord;
use crate::attribution::{metric_values, Tallies};
use crate::experiment::{Catalog, Experiment};
use crate::stats::Moments;
use crate::tracking::{Event, Exposure};
use keys::{AggregateKey, TallyKey};
use trees::{Aggregates, Allocations, Events, Exposures, TallyTree, Tx, VisitorEvents};

/// Tallies and aggregates recomputed from the raw records.
type Derived = (BTreeMap<AggregateKey, Moments>, Vec<(TallyKey, Tallies)>);

/// Most requests one group commit takes.
const MAX_GROUP: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "the data folder {0} is in use by another offerlab process; stop that process or start this one with another --data folder"
    )]
    Locked(PathBuf),
    #[error("stored data is corrupt ({0}); run `offerlab rebuild` to recompute derived data")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
}

impl From<TransactionError<()>> for StoreError {
    fn from(e: TransactionError<()>) -> Self {
        match e {
            TransactionError::Storage(e) => StoreError::Sled(e),
            TransactionError::Abort(()) => StoreError::Corrupt("aborted transaction".into()),
        }
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
}

struct Job {
    writes: Vec<Write>,
    catalog: Arc<Catalog>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<Outcome>, Arc<StoreError>>>,
}

#[derive(Clone)]
struct Trees {
    db: sled::Db,
    exposures: Exposures,
    events: Events,
    visitor_events: VisitorEvents,
    tallies: TallyTree,
    aggregates: Aggregates,
    allocations: Allocations,
}

/// Called with each flush's duration in seconds.
pub type FlushObserver = Box<dyn Fn(f64) + Send + Sync>;

pub struct Store {
    trees: Trees,
    sender: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    flush_observer: Arc<Mutex<Option<FlushObserver>>>,
}

impl Store {
    /// Opens (or creates) the store in `path`. A folder another process has
    /// open is refused with [`StoreError::Locked`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(path).open().map_err(|e| match &e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
                StoreError::Locked(path.to_owned())
            }
            _ => StoreError::Sled(e),
        })?;
        let trees = Trees {
            exposures: Exposures(db.open_tree("exposures")?),
            events: Events(db.open_tree("events")?),
            visitor_events: VisitorEvents(db.open_tree("visitor_events")?),
            tallies: TallyTree(db.open_tree("tallies")?),
            aggregates: Aggregates(db.open_tree("aggregates")?),
            allocations: Allocations(db.open_tree("allocations")?),
            db,
        };
        let (sender, receiver) = mpsc::channel();
        let flush_observer: Arc<Mutex<Option<FlushObserver>>> = Arc::new(Mutex::new(None));
        let writer = {
            let (trees, observer) = (trees.clone(), flush_observer.clone());
            std::thread::Builder::new()
                .name("offerlab-writer".into())
                .spawn(move || writer_loop(&trees, &receiver, &observer))
                .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?
        };
        Ok(Store { trees, sender: Mutex::new(Some(sender)), writer: Mutex::new(Some(writer)), flush_observer })
    }

    /// Reports every flush's duration to `observer` (for `/metrics`).
    pub fn on_flush(&self, observer: FlushObserver) {
        *self.flush_observer.lock().expect("observer lock") = Some(observer);
    }

    /// Records writes durably; returns once they are on disk, with one
    /// outcome per write in order.
    pub async fn record(&self, catalog: Arc<Catalog>, writes: Vec<Write>) -> Result<Vec<Outcome>, Arc<StoreError>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        {
            let sender = self.sender.lock().expect("sender lock");
            let sender = sender.as_ref().ok_or_else(|| Arc::new(StoreError::Closed))?;
            sender.send(Job { writes, catalog, reply }).map_err(|_| Arc::new(StoreError::Closed))?;
        }
        answer.await.map_err(|_| Arc::new(StoreError::Closed))?
    }

    /// The per-day aggregates of the test's current phase, as rows.
    pub fn aggregate_rows(&self, exp: &Experiment) -> Result<Vec<AggregateRow>, StoreError> {
        Ok(self
            .trees
            .aggregates
            .of_phase(exp.id.as_str(), exp.allocation_version)?
            .into_iter()
            .filter_map(|(k, moments)| {
                let variant = exp.variants.get(usize::from(k.variant))?.key.clone();
                Some(AggregateRow { variant, date: exp.day_date(i64::from(k.day)), metric: k.metric, moments })
            })
            .collect())
    }

    /// Visitors exposed in earlier phases of a test (left out of its report).
    pub fn earlier_phase_visitors(&self, exp: &Experiment) -> Result<u64, StoreError> {
        let mut n = 0;
        for phase in 1..exp.allocation_version {
            n += self
                .trees
                .aggregates
                .of_phase(exp.id.as_str(), phase)?
                .iter()
                .filter(|(k, _)| k.metric == exp.primary_metric)
                .map(|(_, m)| m.n)
                .sum::<u64>();
        }
        Ok(n)
    }

    /// Whether one phase of a test has any recorded exposure.
    pub fn has_exposures(&self, experiment: &str, phase: u32) -> Result<bool, StoreError> {
        Ok(self.trees.aggregates.0.scan_prefix(AggregateKey::prefix(experiment, phase)).next().transpose()?.is_some())
    }

    /// The allocation last accepted for a test.
    pub fn allocation(&self, experiment: &str) -> Result<Option<AllocationRecord>, StoreError> {
        self.trees.allocations.get(experiment)
    }

    pub fn set_allocation(&self, experiment: &str, record: &AllocationRecord) -> Result<(), StoreError> {
        self.trees.allocations.put(experiment, record)?;
        self.trees.db.flush()?;
        Ok(())
    }

    pub fn exposures(&self) -> Result<Vec<Exposure>, StoreError> {
        let mut out = Vec::new();
        for list in self.trees.exposures.all() {
            out.extend(list?);
        }
        Ok(out)
    }

    pub fn events(&self) -> Result<Vec<Event>, StoreError> {
        self.trees.events.all().collect()
    }

    /// (exposures, events) stored.
    pub fn counts(&self) -> (usize, usize) {
        let exposures = self.trees.exposures.all().map(|l| l.map_or(0, |l| l.len())).sum();
        (exposures, self.trees.events.count())
    }

    /// Every stored aggregate, keyed.
    pub fn all_aggregates(&self) -> Result<BTreeMap<AggregateKey, Moments>, StoreError> {
        Ok(self.trees.aggregates.all()?.into_iter().collect())
    }

    /// Recomputes every aggregate from the raw exposures and events, without
    /// writing anything.
    pub fn recompute(&self, catalog: &Catalog) -> Result<BTreeMap<AggregateKey, Moments>, StoreError> {
        Ok(self.recompute_all(catalog)?.0)
    }

    fn recompute_all(&self, catalog: &Catalog) -> Result<Derived, StoreError> {
        let mut aggregates = BTreeMap::new();
        let mut tallies = Vec::new();
        for e in self.exposures()? {
            let Some(exp) = catalog.get(&e.experiment) else {
                continue;
            };
            let events = self.trees.visitor_events.of_visitor(&e.visitor)?;
            let t = Tallies::from_events(e.ts, events.iter().map(|ev| (ev.name.as_str(), ev.value, ev.ts)));
            for (metric, (x, y)) in metric_values(exp, catalog, &t) {
                aggregates.entry(aggregate_key(exp, &e, metric)).or_insert_with(Moments::default).add_visitor(x, y);
            }
            tallies
                .push((TallyKey { experiment: e.experiment.clone(), phase: e.phase, visitor: e.visitor.clone() }, t));
        }
        Ok((aggregates, tallies))
    }

    /// Replaces tallies and aggregates by a recomputation from the raw
    /// records. Safe to rerun: the raw trees are never touched, so a rebuild
    /// interrupted half-way is repaired by the next.
    pub fn rebuild(&self, catalog: &Catalog) -> Result<usize, StoreError> {
        let (aggregates, tallies) = self.recompute_all(catalog)?;
        let t = &self.trees;
        t.aggregates.0.clear()?;
        t.tallies.0.clear()?;
        let mut batch = sled::Batch::default();
        for (k, t) in &tallies {
            batch.insert(k.encode(), serde_json::to_vec(t).expect("tallies serialize"));
        }
        t.tallies.0.apply_batch(batch)?;
        let mut batch = sled::Batch::default();
        for (k, m) in &aggregates {
            batch.insert(k.encode(), serde_json::to_vec(m).expect("moments serialize"));
        }
        t.aggregates.0.apply_batch(batch)?;
        t.db.flush()?;
        Ok(aggregates.len())
    }

    /// Stops taking writes, finishes and flushes what was queued, and waits
    /// for the writer. Later writes get [`StoreError::Closed`].
    pub fn close(&self) -> Result<(), StoreError> {
        self.sender.lock().expect("sender lock").take();
        if let Some(w) = self.writer.lock().expect("writer lock").take() {
            let _ = w.join();
        }
        self.trees.db.flush()?;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn aggregate_key(exp: &Experiment, e: &Exposure, metric: &str) -> AggregateKey {
    AggregateKey {
        experiment: e.experiment.clone(),
        phase: e.phase,
        variant: e.variant,
        day: exp.day_index(e.ts).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        metric: metric.to_owned(),
    }
}

fn writer_loop(trees: &Trees, receiver: &Receiver<Job>, observer: &Mutex<Option<FlushObserver>>) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let applied: Result<Vec<Vec<Outcome>>, StoreError> = transact(trees, |tx| {
            group.iter().map(|job| job.writes.iter().map(|w| apply(tx, &job.catalog, w)).collect()).collect()
        });
        let started = Instant::now();
        let flushed = trees.db.flush();
        let seconds = started.elapsed().as_secs_f64();
        if let Some(observe) = observer.lock().expect("observer lock").as_ref() {
            observe(seconds);
        }
        let outcome = match (applied, flushed) {
            (Ok(outcomes), Ok(_)) => Ok(outcomes),
            (Err(e), _) => Err(Arc::new(e)),
            (_, Err(e)) => Err(Arc::new(StoreError::Sled(e))),
        };
        match outcome {
            Ok(outcomes) => {
                for (job, o) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(o));
                }
            }
            Err(e) => {
                for job in group {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Runs `body` in one transaction over every tree and returns its value.
fn transact<T>(trees: &Trees, body: impl Fn(&Tx) -> TxResult<T>) -> Result<T, StoreError> {
    (&trees.exposures.0, &trees.events.0, &trees.visitor_events.0, &trees.tallies.0, &trees.aggregates.0)
        .transaction(|(exposures, events, visitor_events, tallies, aggregates)| {
            let tx = Tx { exposures, events, visitor_events, tallies, aggregates };
            body(&tx).map_err(ConflictableTransactionError::from)
        })
        .map_err(StoreError::from)
}

type TxResult<T> = Result<T, UnabortableTransactionError>;

fn apply(tx: &Tx, catalog: &Catalog, write: &Write) -> TxResult<Outcome> {
    match write {
        Write::Exposure(e) => apply_exposure(tx, catalog, e),
        Write::Event(e) => apply_event(tx, catalog, e),
    }
}

/// A first exposure adds the visitor to its day's aggregates with the
/// events it already has at or after the exposure (they may have arrived
/// first). An exposure earlier than the stored one moves the visitor; a
/// later one is a duplicate.
fn apply_exposure(tx: &Tx, catalog: &Catalog, e: &Exposure) -> TxResult<Outcome> {
    let Some(exp) = catalog.get(&e.experiment) else { return Ok(Outcome::Duplicate) };
    let mut list = tx.exposures_of(&e.visitor)?;
    let previous = list.iter().position(|x| x.experiment == e.experiment && x.phase == e.phase);
    if previous.is_some_and(|i| list[i].ts <= e.ts) {
        return Ok(Outcome::Duplicate);
    }
    let events = tx.events_of(&e.visitor)?;
    let tallies = Tallies::from_events(e.ts, events.iter().map(|ev| (ev.name.as_str(), ev.value, ev.ts)));
    let tally_key = TallyKey { experiment: e.experiment.clone(), phase: e.phase, visitor: e.visitor.clone() };
    if let Some(i) = previous {
        let old = tx.tallies(&tally_key)?;
        for (metric, (x, y)) in metric_values(exp, catalog, &old) {
            tx.update_aggregate(&aggregate_key(exp, &list[i], metric), |m| m.remove_visitor(x, y))?;
        }
        list[i] = e.clone();
    } else {
        list.push(e.clone());
    }
    for (metric, (x, y)) in metric_values(exp, catalog, &tallies) {
        tx.update_aggregate(&aggregate_key(exp, e, metric), |m| m.add_visitor(x, y))?;
    }
    tx.put_tallies(&tally_key, &tallies)?;
    tx.put_exposures(&e.visitor, &list)?;
    Ok(Outcome::Accepted)
}

/// An event updates the tallies, and the aggregates of the metrics that read
/// it, of every test the visitor was first exposed to at or before it.
fn apply_event(tx: &Tx, catalog: &Catalog, ev: &Event) -> TxResult<Outcome> {
    if tx.event_exists(&ev.id)? {
        return Ok(Outcome::Duplicate);
    }
    tx.put_event(ev)?;
    for x in tx.exposures_of(&ev.visitor)?.iter().filter(|x| x.ts <= ev.ts) {
        let Some(exp) = catalog.get(&x.experiment) else { continue };
        let key = TallyKey { experiment: x.experiment.clone(), phase: x.phase, visitor: x.visitor.clone() };
        let old = tx.tallies(&key)?;
        let mut new = old.clone();
        new.add(&ev.name, ev.value);
        let before = metric_values(exp, catalog, &old);
        for ((metric, old_xy), (_, new_xy)) in before.into_iter().zip(metric_values(exp, catalog, &new)) {
            if old_xy != new_xy {
                tx.update_aggregate(&aggregate_key(exp, x, metric), |m| m.apply_delta(old_xy, new_xy))?;
            }
        }
        tx.put_tallies(&key, &new)?;
    }
    Ok(Outcome::Accepted)
}
