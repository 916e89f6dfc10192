//! The one group-commit engine every backend writes through: a bounded
//! queue, groups taken off it, one durable commit per group, deadlines,
//! health and the probe that ends an outage. A backend supplies only what
//! differs ([`Backend`]): how a group is committed and how a probe writes.
//!
//! The rules it keeps for every backend:
//! - **Group commit.** The writer takes every waiting request (up to
//!   [`Limits::max_group`] requests or [`Limits::max_group_writes`] writes)
//!   and commits them at once; nothing is answered before that commit is
//!   durable. When a group fails for one request's sake (a record that does
//!   not decode, say), each request is committed on its own, so only the
//!   failing one gets the error.
//! - **Bounded queue.** At most [`Limits::max_queued`] requests wait; more
//!   get [`StoreError::Busy`] (503 with Retry-After) instead of memory.
//! - **Deadline.** Every write is answered within [`Limits::deadline`]: a
//!   commit that has not finished by then (a frozen database, a network
//!   black hole) answers 503, and the store reads as unhealthy while that
//!   commit runs, so `/healthz` says so too. The write may still commit
//!   later; a retry is safe, since first exposures and event ids make
//!   every write idempotent.
//! - **Health.** An outage ([`StoreError::is_outage`]) marks the store
//!   unhealthy: later groups are answered 503 at once, and the writer
//!   probes every [`Limits::probe_every`] with a durable write until one
//!   succeeds. Each transition is logged once.
//! - **Shutdown.** [`Engine::close`] stops taking writes, lets the queued
//!   ones finish, and gives up after a grace period.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TrySendError};

use super::{FlushObserver, Outcome, Recorded, StoreError, Write};
use crate::experiment::Catalog;

/// A boxed future, as the backends return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One request's writes, with the tests they are checked against.
#[derive(Clone)]
pub struct Pending {
    pub writes: Vec<Write>,
    pub catalog: Arc<Catalog>,
}

/// What a backend does for the engine.
pub trait Backend: Send + Sync + 'static {
    /// Commits the group's writes atomically and durably, with one list of
    /// outcomes per request, or fails as a whole. The group is shared, so
    /// a backend whose commit blocks can hand it to a blocking thread.
    fn commit(&self, group: Arc<[Pending]>) -> BoxFuture<'_, Result<Vec<Vec<Outcome>>, StoreError>>;

    /// Writes something small durably: success ends an outage.
    fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// The engine's bounds and timings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_queued: usize,
    pub max_group: usize,
    pub max_group_writes: usize,
    pub probe_every: Duration,
    /// Longest a write waits for its answer.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_queued: 1024,
            max_group: 512,
            max_group_writes: 5_000,
            probe_every: Duration::from_secs(1),
            deadline: DEFAULT_DEADLINE,
        }
    }
}

/// The default [`Limits::deadline`]: a storefront waits at most this long
/// for a write's answer (`serve --write-deadline`).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Why writes currently fail, if they do; each change is logged once.
#[derive(Default)]
pub(crate) struct Health(Mutex<Option<String>>);

impl Health {
    pub(crate) fn set(&self, reason: Option<String>) {
        let mut h = self.0.lock().expect("health lock");
        match (&*h, &reason) {
            (None, Some(r)) => tracing::error!("store cannot write: {r}"),
            (Some(_), None) => tracing::info!("store writes again"),
            _ => {}
        }
        *h = reason;
    }

    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().expect("health lock").clone()
    }
}

type Answer = Result<Vec<Outcome>, Arc<StoreError>>;

struct Job {
    pending: Pending,
    reply: tokio::sync::oneshot::Sender<Answer>,
    /// When it was queued: its deadline counts from here, and so does a
    /// commit holding it, so a write answered "too late" finds the store
    /// already unhealthy.
    queued: tokio::time::Instant,
}

/// What the writer shares with the handle.
struct Shared {
    limits: Limits,
    health: Health,
    /// When the commit under way began, if one is.
    committing_since: Mutex<Option<Instant>>,
    flush_observer: Mutex<Option<FlushObserver>>,
}

impl Shared {
    /// A commit running past the deadline, as a reason.
    fn stuck(&self) -> Option<String> {
        let since = (*self.committing_since.lock().expect("commit clock"))?;
        let waited = since.elapsed();
        (waited >= self.limits.deadline).then(|| {
            format!(
                "a commit has been waiting {:.0} s for the store (it may be frozen or unreachable)",
                waited.as_secs_f64()
            )
        })
    }
}

/// The handle backends keep: takes writes, reports health, closes.
pub struct Engine {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    done: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl Engine {
    /// The engine, its writer spawned on `runtime` (the service's: the
    /// backends open on it).
    pub fn start<B: Backend>(backend: Arc<B>, limits: Limits, runtime: &tokio::runtime::Handle) -> Engine {
        let (engine, writer) = Engine::new(backend, limits);
        runtime.spawn(writer);
        engine
    }

    /// The engine and its writer, a future to run on a runtime.
    fn new<B: Backend>(backend: Arc<B>, limits: Limits) -> (Engine, impl Future<Output = ()> + Send + 'static) {
        let shared = Arc::new(Shared {
            limits,
            health: Health::default(),
            committing_since: Mutex::new(None),
            flush_observer: Mutex::new(None),
        });
        let (sender, receiver) = mpsc::channel(limits.max_queued.max(1));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let writer = {
            let shared = shared.clone();
            async move {
                writer(&*backend, &shared, receiver).await;
                let _ = done_tx.send(());
            }
        };
        let engine = Engine { shared, sender: Mutex::new(Some(sender)), done: tokio::sync::Mutex::new(Some(done_rx)) };
        (engine, writer)
    }

    /// Queues writes and resolves once they are durable, with one outcome
    /// per write, or with the reason they are not, within the deadline.
    pub fn record(&self, catalog: Arc<Catalog>, writes: Vec<Write>) -> Recorded<'_> {
        let queued = if writes.is_empty() {
            Ok(None)
        } else {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let sender = self.sender.lock().expect("sender lock");
            let queued = tokio::time::Instant::now();
            match sender.as_ref() {
                None => Err(Arc::new(StoreError::Closed)),
                Some(s) => s
                    .try_send(Job { pending: Pending { writes, catalog }, reply, queued })
                    .map(|()| Some((answer, queued)))
                    .map_err(|e| {
                        Arc::new(match e {
                            TrySendError::Full(_) => StoreError::Busy,
                            TrySendError::Closed(_) => StoreError::Closed,
                        })
                    }),
            }
        };
        let deadline = self.shared.limits.deadline;
        Box::pin(async move {
            let Some((answer, queued)) = queued? else { return Ok(Vec::new()) };
            match tokio::time::timeout_at(queued + deadline, answer).await {
                Ok(answer) => answer.map_err(|_| Arc::new(StoreError::Closed))?,
                Err(_) => Err(Arc::new(StoreError::Unavailable(format!(
                    "the store did not answer within {} s",
                    deadline.as_secs_f64()
                )))),
            }
        })
    }

    /// `Err(reason)` while writes fail, or while a commit is stuck past the
    /// deadline.
    pub fn health(&self) -> Result<(), String> {
        match self.shared.health.get().or_else(|| self.shared.stuck()) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    pub fn on_flush(&self, observer: FlushObserver) {
        *self.shared.flush_observer.lock().expect("observer lock") = Some(observer);
    }

    /// Stops taking writes; the writer still commits what was queued.
    pub fn stop(&self) {
        self.sender.lock().expect("sender lock").take();
    }

    /// Stops taking writes and waits, at most `grace`, until every queued
    /// one is committed or answered. Fails when writes were failing at the
    /// end, or when the writer did not finish in time.
    pub async fn close(&self, grace: Duration) -> Result<(), StoreError> {
        self.stop();
        if let Some(done) = self.done.lock().await.take() {
            if tokio::time::timeout(grace, done).await.is_err() {
                return Err(StoreError::Unavailable(format!(
                    "writes were still waiting for the store after {} s; they were not acknowledged",
                    grace.as_secs_f64()
                )));
            }
        }
        match self.shared.health.get() {
            Some(reason) => Err(StoreError::Unavailable(reason)),
            None => Ok(()),
        }
    }
}

/// Takes groups off the queue and commits each; while the store fails,
/// probes it every [`Limits::probe_every`] until it writes again.
async fn writer<B: Backend>(backend: &B, shared: &Shared, mut receiver: mpsc::Receiver<Job>) {
    let limits = shared.limits;
    loop {
        let failing = shared.health.get().is_some();
        let first = if failing {
            match tokio::time::timeout(limits.probe_every, receiver.recv()).await {
                Ok(Some(job)) => Some(job),
                Ok(None) => break,
                Err(_) => None,
            }
        } else {
            match receiver.recv().await {
                Some(job) => Some(job),
                None => break,
            }
        };
        if failing {
            let probed = backend.probe().await;
            shared.health.set(probed.err().map(|e| e.to_string()));
        }
        let Some(first) = first else { continue };
        let mut writes = first.pending.writes.len();
        let mut group = vec![first];
        while group.len() < limits.max_group && writes < limits.max_group_writes {
            match receiver.try_recv() {
                Ok(job) => {
                    writes += job.pending.writes.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        commit(backend, shared, group).await;
    }
}

/// Commits a group and answers every request in it.
async fn commit<B: Backend>(backend: &B, shared: &Shared, group: Vec<Job>) {
    let oldest = group.iter().map(|j| j.queued.into_std()).min().unwrap_or_else(Instant::now);
    let (pending, replies): (Vec<Pending>, Vec<_>) = group.into_iter().map(|j| (j.pending, j.reply)).unzip();
    let pending: Arc<[Pending]> = pending.into();
    if let Some(reason) = shared.health.get() {
        let error = Arc::new(StoreError::Unavailable(reason));
        return replies.into_iter().for_each(|r| drop(r.send(Err(error.clone()))));
    }
    let started = Instant::now();
    // Counted from the oldest write's arrival, as its deadline is.
    *shared.committing_since.lock().expect("commit clock") = Some(oldest);
    let result = backend.commit(pending.clone()).await;
    let answers: Vec<Answer> = match result {
        Ok(all) => all.into_iter().map(Ok).collect(),
        Err(e) if e.is_outage() => {
            let reason = e.to_string();
            shared.health.set(Some(reason.clone()));
            let error = Arc::new(StoreError::Unavailable(reason));
            vec![Err(error); pending.len()]
        }
        // One request's fault, most likely: each on its own.
        Err(_) => {
            let mut answers = Vec::with_capacity(pending.len());
            for one in pending.iter() {
                answers.push(match backend.commit(Arc::from([one.clone()])).await {
                    Ok(mut all) => Ok(all.remove(0)),
                    Err(e) => {
                        if e.is_outage() {
                            shared.health.set(Some(e.to_string()));
                        }
                        Err(Arc::new(e))
                    }
                });
            }
            answers
        }
    };
    *shared.committing_since.lock().expect("commit clock") = None;
    if let Some(observe) = shared.flush_observer.lock().expect("observer lock").as_ref() {
        observe(started.elapsed().as_secs_f64());
    }
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A backend that answers every write `Accepted` after `delay`, fails
    /// while `down`, and counts its commits.
    struct Fake {
        delay: Duration,
        down: std::sync::atomic::AtomicBool,
        commits: AtomicUsize,
    }

    impl Backend for Fake {
        fn commit(&self, group: Arc<[Pending]>) -> BoxFuture<'_, Result<Vec<Vec<Outcome>>, StoreError>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                self.commits.fetch_add(1, Ordering::SeqCst);
                if self.down.load(Ordering::SeqCst) {
                    return Err(StoreError::Unavailable("disk gone".into()));
                }
                Ok(group.iter().map(|p| vec![Outcome::Accepted; p.writes.len()]).collect())
            })
        }

        fn probe(&self) -> BoxFuture<'_, Result<(), StoreError>> {
            Box::pin(async move {
                if self.down.load(Ordering::SeqCst) {
                    Err(StoreError::Unavailable("disk gone".into()))
                } else {
                    Ok(())
                }
            })
        }
    }

    fn event(id: &str) -> Write {
        Write::Event(crate::records::Event {
            id: id.parse().unwrap(),
            visitor: "v".parse().unwrap(),
            name: "order".parse().unwrap(),
            value: 1.0,
            ts: chrono::Utc::now(),
        })
    }

    fn catalog() -> Arc<Catalog> {
        Arc::new(Catalog::new(Vec::new(), Default::default()))
    }

    fn fake(delay: Duration) -> Arc<Fake> {
        Arc::new(Fake { delay, down: Default::default(), commits: AtomicUsize::new(0) })
    }

    #[tokio::test]
    async fn waiting_requests_share_one_commit() {
        let backend = fake(Duration::from_millis(50));
        let engine = Engine::start(backend.clone(), Limits::default(), &tokio::runtime::Handle::current());
        let first = engine.record(catalog(), vec![event("a")]);
        let rest: Vec<_> = (0..10).map(|i| engine.record(catalog(), vec![event(&i.to_string())])).collect();
        assert_eq!(first.await.unwrap(), vec![Outcome::Accepted]);
        for r in futures_util::future::join_all(rest).await {
            assert_eq!(r.unwrap(), vec![Outcome::Accepted]);
        }
        assert!(backend.commits.load(Ordering::SeqCst) <= 2, "{} commits", backend.commits.load(Ordering::SeqCst));
        engine.close(Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn a_commit_past_the_deadline_answers_unavailable_and_reads_unhealthy() {
        let backend = fake(Duration::from_secs(3600));
        let limits = Limits { deadline: Duration::from_millis(100), ..Limits::default() };
        let engine = Engine::start(backend, limits, &tokio::runtime::Handle::current());
        let started = Instant::now();
        let err = engine.record(catalog(), vec![event("a")]).await.unwrap_err();
        assert!(matches!(*err, StoreError::Unavailable(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(engine.health().unwrap_err().contains("waiting"), "{:?}", engine.health());
        let closed = engine.close(Duration::from_millis(100)).await;
        assert!(closed.is_err(), "shutdown gives up after its grace period");
    }

    #[tokio::test]
    async fn an_outage_is_answered_at_once_and_ends_with_a_probe() {
        let backend = fake(Duration::ZERO);
        backend.down.store(true, Ordering::SeqCst);
        let limits = Limits { probe_every: Duration::from_millis(20), ..Limits::default() };
        let engine = Engine::start(backend.clone(), limits, &tokio::runtime::Handle::current());
        assert!(engine.record(catalog(), vec![event("a")]).await.is_err());
        assert!(engine.health().is_err());
        backend.down.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.health().is_err() {
            assert!(Instant::now() < deadline, "the probe never ended the outage");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(engine.record(catalog(), vec![event("b")]).await.unwrap(), vec![Outcome::Accepted]);
    }
}
