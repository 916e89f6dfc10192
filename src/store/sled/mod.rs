//! The embedded default store: exposures and events in sled, in a local
//! folder, with the per-day aggregates kept current on every write by the
//! shared [`super::rules`].
//!
//! Writes go through the shared group-commit engine ([`super::engine`]).
//! Its writer takes all requests
//! waiting in its queue and sled applies the whole group in one transaction
//! over all trees
//! (raw records, per-visitor lists, tallies and aggregates change together
//! or not at all), then makes it durable once and only then answers: a 2xx
//! reply means the write survives power loss, and concurrent requests share
//! one `fdatasync` (group commit). sled's own flush only schedules the
//! pages (`sync_file_range`), which does not make a grown file's length
//! durable, so each group ends with a real `fdatasync` of the data file.
//! Every read a write needs is a point read inside that transaction, so
//! later items of a group see the earlier ones.
//!
//! The engine keeps the rules every backend shares (a group that fails for
//! one request's sake is retried request by request, a bounded queue, a
//! deadline, health); what is sled's own is the transaction, the sync, and
//! the probe, which reopens the database (sled refuses every write after
//! one failed, even once the disk has room again) and writes one durable
//! record.
//!
//! sled's calls block, so every one of them, the engine's commits and
//! every read, runs on the runtime's blocking threads through one helper,
//! [`blocking`]; no async worker ever waits for the disk.
//!
//! Raw exposures and events are the source of truth: `rebuild` recomputes
//! the per-visitor index, tallies and aggregates from them.

pub mod keys;
pub mod trees;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sled::transaction::{TransactionError, Transactional};

use super::engine::{Backend, BoxFuture, Engine, Limits, Pending};
use super::rules::{apply, Recomputed};
use super::rules::{CappedCounts, CappedEntry, CappedIndex, CappedScope, CappedSide, Ledger};
use super::{
    stream_tallies, Attributes, FlushObserver, Outcome, Recorded, Store, StoreError, Visit, Write, TALLY_CHUNK,
};
use crate::aggregates::AggregateRow;
use crate::allocation::AllocationRecord;

use crate::backup::Record;
use crate::experiment::{Catalog, Experiment};
use crate::ids::{ExperimentId, MetricName, VisitorId};
use crate::notify::{AfterTry, Delivery, LastDelivery};
use crate::records::{Event, Exposure};
use crate::stats::Moments;
use keys::{phase_prefix, AggregateKey, SegmentKey, TallyKey};
use trees::{
    Aggregates, Allocations, Capped, Events, Exposures, Notifications, SegmentAggregates, TallyTree, Tx, TxResult,
    VisitorEvents,
};

/// sled's page cache. Its default, 1 GiB, let a server holding a million
/// visitors grow past 1.5 GiB resident (BENCHMARKS.md, memory); writes
/// touch each visitor's pages once or twice, and reports read only the
/// small aggregates tree, so a small cache costs little: pages it drops
/// are read back from the kernel's page cache. 8 MiB held 6 to 9 MiB less
/// than 16 at a million visitors, with no cost to the load that the runs
/// could tell apart (BENCHMARKS.md, memory).
const CACHE_BYTES: u64 = 8 << 20;
/// The layout this version writes. 1: one list of events per visitor and
/// aggregates keyed by days since `start`; 2: events in chunks of 64,
/// aggregates keyed by date, length-prefixed keys; 3: chunks of 8,
/// aggregate rows as 48 bytes of binary sums; 4: 72 bytes, with the CUPED
/// covariate's sums; 5: no tree of event counts, a visitor's open chunk of
/// events says how many full ones precede it; 6: event ids unique per
/// visitor, no tree of events by id (the visitors' chunks are the raw
/// events, and an open chunk holds digests of its visitor's older ids); 7:
/// a value index of each capped metric (tree `capped`); 8: an open chunk
/// holds fewer than 512 digests, the older ones in pages of 512, so no
/// value grows with a visitor's history (an older binary, which would not
/// look in the pages, refuses the folder); 9: a value index's counts may
/// end with its floor (32 bytes, which an older binary would read as
/// corrupt; a layout-8 folder is only marked). A folder of an older layout
/// is rebuilt from its raw records at start.
const FORMAT: u64 = 9;

#[derive(Clone)]
struct Trees {
    db: sled::Db,
    /// The data file, for the `fdatasync` that ends each group commit.
    data_file: Arc<File>,
    /// sled's files of large nodes, synced before the data file.
    blobs: Arc<Blobs>,
    meta: sled::Tree,
    exposures: Exposures,
    visitor_events: VisitorEvents,
    tallies: TallyTree,
    aggregates: Aggregates,
    segments: SegmentAggregates,
    capped: Capped,
    allocations: Allocations,
    notifications: Notifications,
}

impl Trees {
    fn open(path: &Path) -> Result<Trees, StoreError> {
        let db = sled::Config::new().path(path).cache_capacity(CACHE_BYTES).open().map_err(|e| {
            if held_elsewhere(&e) {
                StoreError::Locked(path.to_owned())
            } else {
                StoreError::Sled(e)
            }
        })?;
        Ok(Trees {
            data_file: Arc::new(File::open(path.join("db"))?),
            blobs: Arc::new(Blobs { dir: path.join("blobs"), synced: Default::default() }),
            meta: db.open_tree("meta")?,
            exposures: Exposures(db.open_tree(Exposures::NAME)?),
            visitor_events: VisitorEvents(db.open_tree(VisitorEvents::NAME)?),
            tallies: TallyTree(db.open_tree(TallyTree::NAME)?),
            aggregates: Aggregates(db.open_tree(Aggregates::NAME)?),
            segments: SegmentAggregates(db.open_tree(SegmentAggregates::NAME)?),
            capped: Capped(db.open_tree(Capped::NAME)?),
            allocations: Allocations(db.open_tree(Allocations::NAME)?),
            notifications: Notifications {
                verdicts: db.open_tree(Notifications::NAMES[0])?,
                outbox: db.open_tree(Notifications::NAMES[1])?,
                last: db.open_tree(Notifications::NAMES[2])?,
            },
            db,
        })
    }

    /// Makes everything written so far durable: sled's flush writes the
    /// pages, the blobs any of them point to are synced, and `fdatasync`
    /// makes the pages and the file's length survive power loss.
    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.blobs.sync_new()?;
        self.data_file.sync_data()?;
        Ok(())
    }

    fn format(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.meta.get("format")?.map(|v| v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0)))
    }

    fn set_format(&self) -> Result<(), StoreError> {
        self.meta.insert("format", &FORMAT.to_be_bytes())?;
        Ok(())
    }
}

/// Whether sled refused to open a folder because another handle holds its
/// lock: sled reports it as `WouldBlock`, or wrapped in an error of its own
/// that says it "could not acquire lock".
pub fn held_elsewhere(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock"))
}

/// Makes the folder itself durable before the first write is answered:
/// sled writes its `conf` once without syncing it, and creates `db`,
/// `conf` and `blobs/` (and the folder) without syncing the directories
/// that name them, so after a power cut a new store could lose a file whose
/// pages were synced. Syncs `conf`, the folder, and the folder's parent
/// (where a new folder's own entry lives).
fn sync_entries(path: &Path) -> Result<(), StoreError> {
    File::open(path.join("conf"))?.sync_all()?;
    File::open(path.join("blobs"))?.sync_all()?;
    File::open(path)?.sync_all()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()?;
    Ok(())
}

/// sled 0.34 writes a node larger than a quarter of a segment to a file
/// of its own under `blobs/`, named once and never rewritten, and never
/// syncs it: a power cut after the data file's sync could keep the page
/// that points to a blob and lose the blob. offerlab keeps its values
/// small, so the folder is empty in practice; one that is not (a
/// visitor's list of exposures can grow with the tests they saw) has each
/// new file, and the folder's entry for it, synced before the data file.
struct Blobs {
    dir: PathBuf,
    /// The files already synced (sled removes a blob it no longer needs;
    /// its name leaves this set then).
    synced: std::sync::Mutex<std::collections::HashSet<std::ffi::OsString>>,
}

impl Blobs {
    /// Syncs every file not synced yet, then the folder if there was one;
    /// the names it synced. An empty folder costs one directory read.
    fn sync_new(&self) -> Result<Vec<std::ffi::OsString>, StoreError> {
        let mut synced = self.synced.lock().expect("blobs lock");
        let mut present = std::collections::HashSet::new();
        let mut new = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(self.dir.join(&name)) {
                    Ok(file) => file.sync_all()?,
                    // Removed by sled since the listing: nothing to keep.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
                new.push(name.clone());
            }
            present.insert(name);
        }
        if !new.is_empty() {
            File::open(&self.dir)?.sync_all()?;
        }
        *synced = present;
        Ok(new)
    }
}

/// What the writer shares with the store's readers.
struct Shared {
    path: PathBuf,
    /// `None` while the writer reopens a failed database, and for good
    /// once the store is closed.
    trees: RwLock<Option<Trees>>,
    closed: std::sync::atomic::AtomicBool,
    /// Whether a group commit's transaction is under way: sled makes
    /// every transaction wait for the reads in progress (a
    /// global read-write lock once transactions are used), so a long
    /// reader such as a backup steps only while it is false
    /// ([`Shared::give_way`]).
    applying: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn trees(&self) -> Result<Trees, StoreError> {
        self.trees.read().expect("trees lock").clone().ok_or_else(|| {
            if self.closed.load(std::sync::atomic::Ordering::Acquire) {
                StoreError::Closed
            } else {
                StoreError::Unavailable("the data folder is being reopened after a failed write".into())
            }
        })
    }

    /// Drops the failed database and opens it again; sled refuses every
    /// write after one failed, even once the disk has room again.
    fn reopen(&self) -> Result<Trees, StoreError> {
        let mut slot = self.trees.write().expect("trees lock");
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        *slot = None;
        let fresh = Trees::open(&self.path)?;
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Waits while a group commit applies, so that a long reader does not
    /// hold sled's lock against it.
    fn give_way(&self) {
        while self.applying.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    /// Lets go of the folder (and its lock) as soon as the last commit or
    /// read under way does, so the same process may open it again.
    fn release(&self) {
        let mut slot = self.trees.write().expect("trees lock");
        self.closed.store(true, std::sync::atomic::Ordering::Release);
        *slot = None;
    }
}

/// Runs `work` on the runtime's blocking threads: the one way a sled call
/// is made from async code.
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    work: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || work(&shared))
        .await
        .map_err(|e| StoreError::Internal(format!("a call to the data folder did not finish: {e}")))?
}

pub struct SledStore {
    shared: Arc<Shared>,
    engine: Engine,
    /// The folder holds an older layout: `rebuild` must run first.
    outdated: bool,
    /// Set by the first `close`.
    closing: std::sync::atomic::AtomicBool,
}

impl SledStore {
    /// Opens (or creates) the store in `path`; its writer runs on the
    /// current Tokio runtime. A folder another process has open is refused
    /// with [`StoreError::Locked`].
    pub async fn open(path: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with(path, Limits::default()).await
    }

    /// [`SledStore::open`] with the engine's bounds and deadline.
    pub async fn open_with(path: &Path, limits: Limits) -> Result<SledStore, StoreError> {
        let path = path.to_owned();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let trees = Trees::open(&path)?;
            sync_entries(&path)?;
            let outdated = match trees.format()? {
                Some(FORMAT) => {
                    // An upgrade stopped after its last step but before
                    // dropping the old tree, which it had copied.
                    trees.drop_legacy_events()?;
                    false
                }
                Some(newer) if newer > FORMAT => return Err(StoreError::NewerFormat(path, newer)),
                // Layout 8 is layout 9 with no floor yet: marked, not rebuilt.
                Some(8) => {
                    trees.set_format()?;
                    trees.sync()?;
                    false
                }
                _ if trees.legacy_events()?.is_none()
                    && trees.exposures.0.is_empty()
                    && trees.visitor_events.0.is_empty() =>
                {
                    trees.set_format()?;
                    trees.sync()?;
                    false
                }
                _ => true,
            };
            let shared = Arc::new(Shared {
                path,
                trees: RwLock::new(Some(trees)),
                closed: std::sync::atomic::AtomicBool::new(false),
                applying: std::sync::atomic::AtomicBool::new(false),
            });
            let engine = Engine::start(Arc::new(SledBackend(shared.clone())), limits, &runtime);
            Ok(SledStore { shared, engine, outdated, closing: Default::default() })
        })
        .await
        .map_err(|e| StoreError::Internal(format!("opening the data folder did not finish: {e}")))?
    }

    /// Whether the folder was written in an older layout and needs
    /// `rebuild` ([`Store::rebuild`]) before it serves.
    pub fn outdated(&self) -> bool {
        self.outdated
    }

    pub async fn exposures(&self) -> Result<Vec<Exposure>, StoreError> {
        blocking(&self.shared, |s| concat(s.trees()?.exposures.all())).await
    }

    pub async fn events(&self) -> Result<Vec<Event>, StoreError> {
        blocking(&self.shared, |s| concat(s.trees()?.visitor_events.all())).await
    }

    /// Every event of one visitor, in arrival order.
    pub async fn events_of(&self, visitor: &VisitorId) -> Result<Vec<Event>, StoreError> {
        let visitor = visitor.clone();
        blocking(&self.shared, move |s| s.trees()?.visitor_events.of_visitor(&visitor)).await
    }
}

impl Trees {
    /// Tallies and aggregates recomputed from the raw trees.
    fn recompute_all(&self, catalog: &Catalog) -> Result<Recomputed, StoreError> {
        let trees = self;
        let mut out = Recomputed::default();
        for list in trees.exposures.all() {
            let list = list?;
            let Some(visitor) = list.first().map(|e| e.visitor.clone()) else { continue };
            out.visitor(catalog, &list, &trees.visitor_events.of_visitor(&visitor)?);
        }
        Ok(out)
    }

    /// Recomputes the open chunks' digests of older ids and their pages,
    /// then replaces tallies and aggregates by a recomputation. Safe to
    /// rerun: the raw events and exposures are never rewritten, so a
    /// rebuild interrupted half-way is repaired by the next (the layout
    /// marker is cleared first and set last, so an interrupted rebuild
    /// makes the next start rebuild again).
    ///
    /// Also upgrades a folder of an older layout: its events tree, the raw
    /// events then, is copied into the visitors' chunks (rebuilt from it
    /// whole, so an interrupted copy starts over), and dropped only once
    /// the new layout is marked and synced.
    fn rebuild_folder(&self, catalog: &Catalog) -> Result<usize, StoreError> {
        let t = self;
        t.meta.remove("format")?;
        t.sync()?;
        // Layouts before 5 kept each visitor's event count in a tree of its own.
        t.db.drop_tree("visitors")?;
        if let Some(legacy) = t.legacy_events()? {
            t.visitor_events.0.clear()?;
            let mut events: Vec<Event> = legacy.all().collect::<Result<_, _>>()?;
            events.sort_by(|a, b| (&a.visitor, a.ts, &a.id).cmp(&(&b.visitor, b.ts, &b.id)));
            for batch in events.chunks(10_000) {
                transact(t, |tx| batch.iter().try_for_each(|e| tx.append_event(e)))?;
            }
        } else {
            t.visitor_events.redigest()?;
        }
        let Recomputed { aggregates, segments, tallies, capped } = self.recompute_all(catalog)?;
        t.aggregates.0.clear()?;
        t.segments.0.clear()?;
        t.tallies.0.clear()?;
        t.capped.0.clear()?;
        t.capped.write_all(&capped)?;
        let mut batch = sled::Batch::default();
        for (k, t) in &tallies {
            batch.insert(k.encode(), trees::encode(t));
        }
        t.tallies.0.apply_batch(batch)?;
        let mut batch = sled::Batch::default();
        for (k, m) in &aggregates {
            batch.insert(k.encode(), &Aggregates::encode_value(m)[..]);
        }
        t.aggregates.0.apply_batch(batch)?;
        let mut batch = sled::Batch::default();
        for (k, m) in &segments {
            batch.insert(k.encode(), &Aggregates::encode_value(m)[..]);
        }
        t.segments.0.apply_batch(batch)?;
        t.set_format()?;
        t.sync()?;
        t.drop_legacy_events()?;
        Ok(aggregates.len())
    }

    /// Whether the tree exists, asked of sled each time: opening a tree by
    /// name creates it.
    fn has_tree(&self, name: &str) -> bool {
        self.db.tree_names().iter().any(|n| n == name.as_bytes())
    }

    /// The events tree of layouts up to 5, when it holds events to copy. An
    /// empty one (an older offerlab opens its trees before it refuses a
    /// newer layout) holds nothing.
    fn legacy_events(&self) -> Result<Option<Events>, StoreError> {
        if !self.has_tree(Events::NAME) {
            return Ok(None);
        }
        let tree = Events(self.db.open_tree(Events::NAME)?);
        Ok((!tree.0.is_empty()).then_some(tree))
    }

    /// Drops the events tree of layouts up to 5, once the visitors' chunks
    /// hold every event it had.
    fn drop_legacy_events(&self) -> Result<(), StoreError> {
        if self.has_tree(Events::NAME) {
            self.db.drop_tree(Events::NAME)?;
            self.sync()?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    fn record(&self, catalog: Arc<Catalog>, writes: Vec<Write>) -> Recorded<'_> {
        self.engine.record(catalog, writes)
    }
    fn kind(&self) -> &'static str {
        "sled"
    }
    fn health(&self) -> Result<(), String> {
        self.engine.health()
    }
    fn on_flush(&self, observer: FlushObserver) {
        self.engine.on_flush(observer);
    }
    async fn all_aggregates(&self) -> Result<BTreeMap<AggregateKey, Moments>, StoreError> {
        blocking(&self.shared, |s| Ok(s.trees()?.aggregates.all()?.into_iter().collect())).await
    }
    async fn verdicts_seen(&self) -> Result<BTreeMap<ExperimentId, String>, StoreError> {
        blocking(&self.shared, |s| s.trees()?.notifications.verdicts()).await
    }
    async fn advance_verdict(
        &self,
        experiment: &ExperimentId,
        seen: Option<&str>,
        code: &str,
        deliveries: &[Delivery],
    ) -> Result<bool, StoreError> {
        let (id, seen, code, deliveries) =
            (experiment.clone(), seen.map(str::to_owned), code.to_owned(), deliveries.to_vec());
        blocking(&self.shared, move |s| {
            let trees = s.trees()?;
            let advanced = trees.notifications.advance(&id, seen.as_deref(), &code, &deliveries)?;
            trees.sync()?;
            Ok(advanced)
        })
        .await
    }
    /// One process holds a data folder, and one task sends: no lease needed.
    async fn take_delivery(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        _holder: &str,
        _lease: Duration,
    ) -> Result<Option<Delivery>, StoreError> {
        blocking(&self.shared, move |s| s.trees()?.notifications.due(now)).await
    }
    async fn tried_delivery(&self, _holder: &str, id: &str, after: AfterTry) -> Result<(), StoreError> {
        let id = id.to_owned();
        blocking(&self.shared, move |s| {
            let trees = s.trees()?;
            trees.notifications.tried(&id, &after)?;
            trees.sync()
        })
        .await
    }
    async fn last_deliveries(&self) -> Result<Vec<LastDelivery>, StoreError> {
        blocking(&self.shared, |s| s.trees()?.notifications.last()).await
    }
    /// Reads each tree in key order on a thread of low priority
    /// ([`crate::background`]) that gives way to each group commit
    /// ([`Shared::give_way`]): each visitor's exposures are one record, and
    /// each visitor's events are read as of its open chunk
    /// ([`VisitorEvents::by_visitor`]), so a write racing with the export
    /// is wholly in or out.
    async fn export(&self) -> Result<super::Export, StoreError> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let shared = self.shared.clone();
        let export = move || {
            let read = || -> Result<(), StoreError> {
                let trees = shared.trees()?;
                let mut chunk = Vec::with_capacity(super::RECORD_CHUNK);
                let mut send = |r: Record| {
                    chunk.push(r);
                    if chunk.len() == super::RECORD_CHUNK && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                        return Err(StoreError::Internal("the backup's reader went away".into()));
                    }
                    Ok(())
                };
                for list in trees.exposures.all() {
                    list?.into_iter().try_for_each(|e| send(Record::Exposure(e)))?;
                    shared.give_way();
                }
                for events in trees.visitor_events.by_visitor() {
                    events?.into_iter().try_for_each(|e| send(Record::Event(e)))?;
                    shared.give_way();
                }
                for (experiment, record) in trees.allocations.all()? {
                    send(Record::Allocation { experiment, record })?;
                }
                for (experiment, code) in trees.notifications.verdicts()? {
                    send(Record::Verdict { experiment, code })?;
                }
                let _ = tx.blocking_send(Ok(chunk));
                Ok(())
            };
            if let Err(e) = read() {
                let _ = tx.blocking_send(Err(e));
            }
        };
        crate::background::spawn_low_priority("backup-reader", export)?;
        Ok(rx)
    }

    /// In one transaction per call: each exposure joins its visitor's list,
    /// each event is appended to its visitor's chunks, in the order given.
    async fn import(&self, records: Vec<Record>) -> Result<(), StoreError> {
        blocking(&self.shared, move |s| {
            let trees = s.trees()?;
            transact(&trees, |tx| {
                for r in &records {
                    match r {
                        Record::Exposure(e) => {
                            let mut list = tx.exposures_of(&e.visitor)?;
                            list.push(e.clone());
                            tx.put_exposures(&e.visitor, &list)?;
                        }
                        Record::Event(e) => tx.append_event(e)?,
                        Record::Allocation { .. } | Record::Verdict { .. } => {}
                    }
                }
                Ok(())
            })?;
            for r in &records {
                match r {
                    Record::Allocation { experiment, record } => trees.allocations.put(experiment, record)?,
                    Record::Verdict { experiment, code } => {
                        trees.notifications.verdicts.insert(experiment.as_str().as_bytes(), code.as_bytes())?;
                    }
                    Record::Exposure(_) | Record::Event(_) => {}
                }
            }
            trees.sync()
        })
        .await
    }

    async fn all_capped(&self) -> Result<CappedIndex, StoreError> {
        blocking(&self.shared, |s| s.trees()?.capped.all()).await
    }
    async fn segment_rows(&self, exp: &Experiment) -> Result<Vec<(SegmentKey, Moments)>, StoreError> {
        let (id, phase) = (exp.id.clone(), exp.allocation_version);
        blocking(&self.shared, move |s| s.trees()?.segments.of_phase(&id, phase)).await
    }
    async fn all_segments(&self) -> Result<BTreeMap<SegmentKey, Moments>, StoreError> {
        blocking(&self.shared, |s| Ok(s.trees()?.segments.all()?.into_iter().collect())).await
    }
    async fn attributes_of(&self, exp: &Experiment, visitors: Vec<VisitorId>) -> Result<Attributes, StoreError> {
        let (experiment, phase) = (exp.id.clone(), exp.allocation_version);
        blocking(&self.shared, move |s| {
            let exposures = &s.trees()?.exposures;
            let mut out = Attributes::new();
            for visitor in visitors {
                let kept = exposures.kept(&visitor, &experiment, phase)?;
                if !kept.is_empty() {
                    out.insert(visitor, kept);
                }
            }
            Ok(out)
        })
        .await
    }
    async fn recompute(&self, catalog: &Catalog) -> Result<Recomputed, StoreError> {
        let catalog = catalog.clone();
        blocking(&self.shared, move |s| s.trees()?.recompute_all(&catalog)).await
    }
    /// Rebuilds the per-visitor event index too, and upgrades a folder of
    /// an older layout.
    async fn rebuild(&self, catalog: &Catalog) -> Result<usize, StoreError> {
        let catalog = catalog.clone();
        blocking(&self.shared, move |s| s.trees()?.rebuild_folder(&catalog)).await
    }
    async fn aggregate_rows(&self, exp: &Experiment) -> Result<Vec<AggregateRow>, StoreError> {
        let (id, phase) = (exp.id.clone(), exp.allocation_version);
        let rows = blocking(&self.shared, move |s| s.trees()?.aggregates.of_phase(&id, phase)).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, moments)| {
                let variant = exp.variant_at(k.variant)?.key.clone();
                Some(AggregateRow { variant, date: k.date, metric: k.metric.into_string(), moments })
            })
            .collect())
    }
    /// A prefix scan of the phase's tallies: each names the first exposure
    /// it counts from (every tally this layout writes does; one without is
    /// corrupt, and `offerlab rebuild` recomputes it).
    /// With `attributes`, each visitor's exposures are read too.
    async fn visit_tallies(&self, exp: &Experiment, attributes: bool, visit: &mut Visit<'_>) -> Result<(), StoreError> {
        let (id, phase) = (exp.id.clone(), exp.allocation_version);
        let shared = &self.shared;
        stream_tallies(
            |tx| {
                blocking(shared, move |s| {
                    let mut chunk = Vec::with_capacity(TALLY_CHUNK);
                    let trees = s.trees()?;
                    for kv in trees.tallies.of_phase(&id, phase) {
                        let (key, tallies) = kv?;
                        let origin = tallies
                            .origin
                            .ok_or_else(|| TallyTree::corrupt(&key, "tallies without their first exposure"))?;
                        let kept = match attributes {
                            false => BTreeMap::new(),
                            true => {
                                let visitor = TallyKey::decode(&key)
                                    .ok_or_else(|| TallyTree::corrupt(&key, "the key does not decode"))?
                                    .visitor;
                                trees.exposures.kept(&visitor, &id, phase)?
                            }
                        };
                        chunk.push((origin.variant, origin.at, tallies, kept));
                        if chunk.len() == TALLY_CHUNK && tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                            return Ok(()); // the reader gave up
                        }
                    }
                    let _ = tx.blocking_send(chunk);
                    Ok(())
                })
            },
            visit,
        )
        .await
    }
    async fn capped_counts(&self, exp: &Experiment, metric: &MetricName) -> Result<CappedCounts, StoreError> {
        let scope = CappedScope::current(exp, metric);
        blocking(&self.shared, move |s| s.trees()?.capped.counts(&scope)).await
    }
    async fn capped_values(
        &self,
        exp: &Experiment,
        metric: &MetricName,
        floor: Option<f64>,
        skip: usize,
        take: usize,
    ) -> Result<Vec<f64>, StoreError> {
        let scope = CappedScope::current(exp, metric);
        blocking(&self.shared, move |s| s.trees()?.capped.values(&scope, floor, skip, take)).await
    }

    async fn raise_capped_floor(&self, exp: &Experiment, metric: &MetricName, floor: f64) -> Result<bool, StoreError> {
        let scope = CappedScope::current(exp, metric);
        blocking(&self.shared, move |s| s.trees()?.capped.raise_floor(&scope, floor)).await
    }
    async fn capped_top(
        &self,
        exp: &Experiment,
        metric: &MetricName,
        side: CappedSide,
        floor: f64,
    ) -> Result<Vec<(VisitorId, CappedEntry)>, StoreError> {
        let scope = CappedScope::current(exp, metric);
        blocking(&self.shared, move |s| s.trees()?.capped.top(&scope, side, floor)).await
    }
    async fn earlier_phase_visitors(&self, exp: &Experiment) -> Result<u64, StoreError> {
        let (id, phases, metric) = (exp.id.clone(), 1..exp.allocation_version, exp.primary_metric.clone());
        blocking(&self.shared, move |s| {
            let trees = s.trees()?;
            let mut n = 0;
            for phase in phases {
                n += trees
                    .aggregates
                    .of_phase(&id, phase)?
                    .iter()
                    .filter(|(k, _)| k.metric.as_str() == metric)
                    .map(|(_, m)| m.n)
                    .sum::<u64>();
            }
            Ok(n)
        })
        .await
    }
    async fn has_exposures(&self, experiment: &ExperimentId, phase: u32) -> Result<bool, StoreError> {
        let prefix = phase_prefix(experiment, phase);
        blocking(&self.shared, move |s| Ok(s.trees()?.aggregates.0.scan_prefix(prefix).next().transpose()?.is_some()))
            .await
    }
    async fn allocation(&self, experiment: &ExperimentId) -> Result<Option<AllocationRecord>, StoreError> {
        let id = experiment.clone();
        blocking(&self.shared, move |s| s.trees()?.allocations.get(&id)).await
    }
    async fn set_allocation(&self, experiment: &ExperimentId, record: &AllocationRecord) -> Result<(), StoreError> {
        let (id, record) = (experiment.clone(), record.clone());
        blocking(&self.shared, move |s| {
            let trees = s.trees()?;
            trees.allocations.put(&id, &record)?;
            trees.sync()
        })
        .await
    }
    async fn counts(&self) -> Result<(usize, usize), StoreError> {
        blocking(&self.shared, |s| {
            let trees = s.trees()?;
            let mut exposures = 0;
            for list in trees.exposures.all() {
                exposures += list?.len();
            }
            Ok((exposures, trees.visitor_events.count()?))
        })
        .await
    }
    /// Stops taking writes, finishes and syncs what was queued. Later
    /// writes get [`StoreError::Closed`]. Fails when the final sync does,
    /// or when writes were failing at the end.
    async fn close(&self) -> Result<(), StoreError> {
        if self.closing.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(()); // closed, or being closed, by another caller
        }
        let closed = self.engine.close(CLOSE_GRACE).await;
        blocking(&self.shared, move |s| {
            let result = closed.and_then(|()| s.trees()?.sync());
            s.release();
            result
        })
        .await
    }
}

/// A store dropped unclosed stops taking writes and lets go of its folder
/// once a commit under way ends (sled flushes as its last handle goes);
/// writes still queued get [`StoreError::Closed`]. The service closes its
/// store instead, which waits for them.
impl Drop for SledStore {
    fn drop(&mut self) {
        self.engine.stop();
        self.shared.release();
    }
}

/// Longest `close` waits for queued writes.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// What sled does for the engine.
struct SledBackend(Arc<Shared>);

impl Backend for SledBackend {
    /// Applies the group in one transaction and syncs once.
    fn commit(&self, group: Arc<[Pending]>) -> BoxFuture<'_, Result<Vec<Vec<Outcome>>, StoreError>> {
        Box::pin(blocking(&self.0, move |s| {
            let trees = s.trees()?;
            s.applying.store(true, std::sync::atomic::Ordering::Release);
            let all = transact(&trees, |tx| {
                group
                    .iter()
                    .map(|p| p.writes.iter().map(|w| apply(tx, &p.catalog, w)).collect::<TxResult<Vec<_>>>())
                    .collect::<TxResult<Vec<_>>>()
            });
            s.applying.store(false, std::sync::atomic::Ordering::Release);
            let all = all?;
            trees.sync()?;
            Ok(all)
        }))
    }

    /// Reopens the database and writes one durable record.
    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(blocking(&self.0, |s| {
            let trees = s.reopen()?;
            trees.meta.insert("probe", &chrono::Utc::now().timestamp_micros().to_be_bytes())?;
            trees.sync()
        }))
    }
}

/// Every item of lists read one after the other (a visitor's exposures, a
/// chunk of events).
fn concat<T>(mut lists: impl Iterator<Item = Result<Vec<T>, StoreError>>) -> Result<Vec<T>, StoreError> {
    lists.try_fold(Vec::new(), |mut out, list| {
        out.extend(list?);
        Ok(out)
    })
}

/// Runs `body` in one transaction over every tree and returns its value.
fn transact<T>(trees: &Trees, body: impl Fn(&Tx) -> TxResult<T>) -> Result<T, StoreError> {
    let t = trees;
    (&t.exposures.0, &t.visitor_events.0, &t.tallies.0, &t.aggregates.0, &t.segments.0, &t.capped.0)
        .transaction(|(exposures, visitor_events, tallies, aggregates, segments, capped)| {
            let tx = Tx { exposures, visitor_events, tallies, aggregates, segments, capped, sums: Default::default() };
            let out = body(&tx)?;
            tx.write_sums()?;
            Ok(out)
        })
        .map_err(StoreError::from)
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Storage(e) => StoreError::Sled(e),
            TransactionError::Abort(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value past sled's inline limit lands in a blob, which the next
    /// sync makes durable before the data file (once: a file already
    /// synced is not synced again).
    #[test]
    fn a_blob_sled_writes_is_synced_with_the_group_that_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let trees = Trees::open(dir.path()).unwrap();
        assert_eq!(trees.blobs.sync_new().unwrap(), Vec::<std::ffi::OsString>::new(), "no blob yet");
        trees.meta.insert("large", vec![7u8; 300 << 10]).unwrap();
        trees.sync().unwrap();
        let on_disk: Vec<_> =
            std::fs::read_dir(dir.path().join("blobs")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!on_disk.is_empty(), "sled wrote the value to a blob");
        let synced = trees.blobs.synced.lock().unwrap().clone();
        assert!(on_disk.iter().all(|name| synced.contains(name)), "{on_disk:?} synced: {synced:?}");
        assert_eq!(trees.blobs.sync_new().unwrap(), Vec::<std::ffi::OsString>::new(), "each file once");
    }
}
