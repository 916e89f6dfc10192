//! One group commit's view of PostgreSQL, in memory: the rows of the
//! visitors and event ids the group touches, read once at the start of the
//! transaction (after their locks are taken), a [`Ledger`] the shared
//! [`rules`](crate::store::rules) run on, and the changes to write back at
//! the end. Pure: no I/O, so the rules cost no round trip per write.
//!
//! Aggregate rows are shared by every visitor of a day, so they are never
//! read here: each [`Change`] is summed into a delta per row, and the write
//! back adds the deltas to the rows in key order.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::attribution::Tallies;
use crate::ids::{EventId, VisitorId};
use crate::records::{Event, Exposure};
use crate::stats::Moments;
use crate::store::rules::{AggregateKey, CappedEntry, CappedScope, Change, Ledger, SegmentKey, Stored, TallyKey};
use crate::store::Write;

/// What a group must read before its rules run.
#[derive(Debug, Default, PartialEq)]
pub struct Needs {
    /// Every visitor a write names: their exposures and tallies.
    pub visitors: Vec<VisitorId>,
    /// Visitors with an exposure write: their events (a first exposure
    /// picks up the events that arrived before it).
    pub history: Vec<VisitorId>,
    /// Every (visitor, event id) written: whether it is stored already.
    pub event_ids: Vec<(VisitorId, EventId)>,
}

impl Needs {
    /// Sorted and without repeats.
    pub fn of<'a>(writes: impl IntoIterator<Item = &'a Write>) -> Needs {
        let (mut visitors, mut history, mut event_ids) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for w in writes {
            match w {
                Write::Exposure(e) => {
                    visitors.insert(&e.visitor);
                    history.insert(&e.visitor);
                }
                Write::Event(e) => {
                    visitors.insert(&e.visitor);
                    event_ids.insert((&e.visitor, &e.id));
                }
            }
        }
        Needs {
            visitors: visitors.into_iter().cloned().collect(),
            history: history.into_iter().cloned().collect(),
            event_ids: event_ids.into_iter().map(|(v, id)| (v.clone(), id.clone())).collect(),
        }
    }
}

/// A read the group did not fetch first: a bug in [`Needs::of`], never a
/// reason to read a row as empty.
#[derive(Debug, thiserror::Error)]
#[error("the group commit did not read {0} first")]
pub struct NotFetched(pub String);

/// One aggregate row's summed changes: visitors joining or leaving (`n`,
/// which may go down) and the change of the sums (`sums`, whose own `n`
/// stays 0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Delta {
    pub n: i64,
    pub sums: Moments,
}

impl Delta {
    fn add(&mut self, c: Change) {
        self.n += c.visitors;
        self.sums.apply_delta(c.old, c.new);
    }
}

/// What the group changed, to write back in one transaction.
#[derive(Debug, Default)]
pub struct Changes {
    /// Exposures new or moved to an earlier time.
    pub exposures: Vec<Exposure>,
    pub events: Vec<Event>,
    pub tallies: Vec<(TallyKey, Tallies)>,
    /// In key order, the order every replica locks rows in.
    pub aggregates: BTreeMap<AggregateKey, Delta>,
    /// Likewise the segment rows.
    pub segments: BTreeMap<SegmentKey, Delta>,
    /// Each touched visitor's value-index entry as it ends (`None`: none).
    pub capped: BTreeMap<(CappedScope, VisitorId), Option<CappedEntry>>,
    /// The change of each index's counts, (covered, positive, negative),
    /// in key order.
    pub capped_counts: BTreeMap<CappedScope, [i64; 3]>,
}

#[derive(Default)]
pub struct Overlay {
    exposures: RefCell<HashMap<VisitorId, Vec<Exposure>>>,
    fetched_exposures: HashMap<VisitorId, Vec<Exposure>>,
    events: RefCell<HashMap<(VisitorId, EventId), Event>>,
    fetched_ids: BTreeSet<(VisitorId, EventId)>,
    history: RefCell<HashMap<VisitorId, Vec<Event>>>,
    tallies: RefCell<HashMap<TallyKey, Tallies>>,
    new_events: RefCell<Vec<Event>>,
    dirty_tallies: RefCell<BTreeSet<TallyKey>>,
    aggregates: RefCell<BTreeMap<AggregateKey, Delta>>,
    segments: RefCell<BTreeMap<SegmentKey, Delta>>,
    capped: RefCell<BTreeMap<(CappedScope, VisitorId), Option<CappedEntry>>>,
    capped_counts: RefCell<BTreeMap<CappedScope, [i64; 3]>>,
    /// The floors of the value indexes that have one, as read in this
    /// transaction.
    floors: HashMap<CappedScope, f64>,
}

impl Overlay {
    /// An overlay over what was read for `needs`: the stored exposures,
    /// tallies, events of the `history` visitors, and the stored events
    /// with the wanted ids.
    pub fn new(
        needs: &Needs,
        exposures: Vec<Exposure>,
        tallies: Vec<(TallyKey, Tallies)>,
        history: Vec<Event>,
        known: Vec<Event>,
        floors: HashMap<CappedScope, f64>,
    ) -> Overlay {
        let mut by_visitor: HashMap<VisitorId, Vec<Exposure>> =
            needs.visitors.iter().map(|v| (v.clone(), Vec::new())).collect();
        for e in exposures {
            by_visitor.entry(e.visitor.clone()).or_default().push(e);
        }
        let mut events_of: HashMap<VisitorId, Vec<Event>> =
            needs.history.iter().map(|v| (v.clone(), Vec::new())).collect();
        for e in history {
            events_of.entry(e.visitor.clone()).or_default().push(e);
        }
        Overlay {
            fetched_exposures: by_visitor.clone(),
            exposures: RefCell::new(by_visitor),
            events: RefCell::new(known.into_iter().map(|e| ((e.visitor.clone(), e.id.clone()), e)).collect()),
            fetched_ids: needs.event_ids.iter().cloned().collect(),
            history: RefCell::new(events_of),
            tallies: RefCell::new(tallies.into_iter().collect()),
            floors,
            ..Overlay::default()
        }
    }

    /// What changed, to write back.
    pub fn into_changes(self) -> Changes {
        let exposures = self
            .exposures
            .into_inner()
            .into_iter()
            .flat_map(|(visitor, list)| {
                let before = self.fetched_exposures.get(&visitor).cloned().unwrap_or_default();
                list.into_iter().filter(move |e| !before.contains(e))
            })
            .collect();
        let tallies = self.tallies.into_inner();
        let tallies = self
            .dirty_tallies
            .into_inner()
            .into_iter()
            .map(|k| {
                let t = tallies.get(&k).cloned().unwrap_or_default();
                (k, t)
            })
            .collect();
        Changes {
            exposures,
            events: self.new_events.into_inner(),
            tallies,
            aggregates: self.aggregates.into_inner(),
            segments: self.segments.into_inner(),
            capped: self.capped.into_inner(),
            capped_counts: self.capped_counts.into_inner(),
        }
    }

    fn check_visitor(&self, visitor: &VisitorId) -> Result<(), NotFetched> {
        match self.fetched_exposures.contains_key(visitor) {
            true => Ok(()),
            false => Err(NotFetched(format!("visitor {visitor:?}"))),
        }
    }
}

impl Ledger for Overlay {
    type Error = NotFetched;

    fn exposures_of(&self, visitor: &VisitorId) -> Result<Vec<Exposure>, NotFetched> {
        self.exposures.borrow().get(visitor).cloned().ok_or_else(|| NotFetched(format!("the exposures of {visitor:?}")))
    }

    fn put_exposures(&self, visitor: &VisitorId, list: &[Exposure]) -> Result<(), NotFetched> {
        self.check_visitor(visitor)?;
        self.exposures.borrow_mut().insert(visitor.clone(), list.to_vec());
        Ok(())
    }

    fn event_by_id(&self, e: &Event) -> Result<Stored, NotFetched> {
        let key = (e.visitor.clone(), e.id.clone());
        if !self.fetched_ids.contains(&key) {
            return Err(NotFetched(format!("event id {:?} of {:?}", e.id, e.visitor)));
        }
        Ok(Stored::compare(self.events.borrow().get(&key), e))
    }

    fn events_of(&self, visitor: &VisitorId) -> Result<Vec<Event>, NotFetched> {
        self.history.borrow().get(visitor).cloned().ok_or_else(|| NotFetched(format!("the events of {visitor:?}")))
    }

    fn put_event(&self, e: &Event) -> Result<(), NotFetched> {
        self.events.borrow_mut().insert((e.visitor.clone(), e.id.clone()), e.clone());
        if let Some(list) = self.history.borrow_mut().get_mut(&e.visitor) {
            list.push(e.clone());
        }
        self.new_events.borrow_mut().push(e.clone());
        Ok(())
    }

    fn tallies(&self, key: &TallyKey) -> Result<Tallies, NotFetched> {
        self.check_visitor(&key.visitor)?;
        Ok(self.tallies.borrow().get(key).cloned().unwrap_or_default())
    }

    fn put_tallies(&self, key: &TallyKey, t: &Tallies) -> Result<(), NotFetched> {
        self.check_visitor(&key.visitor)?;
        self.tallies.borrow_mut().insert(key.clone(), t.clone());
        self.dirty_tallies.borrow_mut().insert(key.clone());
        Ok(())
    }

    fn update_aggregate(&self, key: &AggregateKey, change: Change) -> Result<(), NotFetched> {
        self.aggregates.borrow_mut().entry(key.clone()).or_default().add(change);
        Ok(())
    }

    fn update_segment(
        &self,
        row: &AggregateKey,
        attribute: &str,
        value: &str,
        change: Change,
    ) -> Result<(), NotFetched> {
        self.segments.borrow_mut().entry(SegmentKey::of(row, attribute, value)).or_default().add(change);
        Ok(())
    }

    /// Keeps the entry the visitor ends with, and sums the counts' change.
    fn update_capped(&self, key: &AggregateKey, visitor: &VisitorId, change: Change) -> Result<(), NotFetched> {
        self.check_visitor(visitor)?;
        // No scope is built for the lookup while no index has a floor.
        let scope = (!self.floors.is_empty()).then(|| CappedScope::of(key));
        let floor = scope.as_ref().and_then(|s| self.floors.get(s).copied());
        let (before, after) = change.entries(key, floor);
        let counts = change.counts();
        if before == after && counts == [0; 3] {
            return Ok(());
        }
        let scope = scope.unwrap_or_else(|| CappedScope::of(key));
        if counts != [0; 3] {
            let mut sums = self.capped_counts.borrow_mut();
            let sum = sums.entry(scope.clone()).or_default();
            *sum = std::array::from_fn(|i| sum[i] + counts[i]);
        }
        // A visitor with nothing to index, before or after, has no row to
        // delete unless this group wrote one.
        let mut capped = self.capped.borrow_mut();
        let key = (scope, visitor.clone());
        if before.is_some() || after.is_some() || capped.contains_key(&key) {
            capped.insert(key, after);
        }
        Ok(())
    }
}
