//! The write rules, once for every backend: pure code over a [`Ledger`],
//! the point reads and writes of one transaction.
//!
//! - The first exposure per visitor, test and phase counts; a later one is a
//!   duplicate; an earlier one (it arrived late) moves the visitor to its
//!   day, taking their contribution from the old day's aggregates.
//! - An event counts for a test when the visitor's first exposure is at or
//!   before it, whatever order the calls arrived in: a first exposure picks
//!   up the events the visitor already has at or after it.
//! - For a CUPED metric, the visitor's events in the days before the first
//!   exposure are its covariate, likewise in any order: an exposure tallies
//!   the earlier events it finds, and a late event before an exposure
//!   updates the covariate.
//! - An event id is stored once per visitor: the same id again for that
//!   visitor, with the same name and value, is a duplicate (a retry always
//!   comes from the visitor it is about), with another name or value a
//!   conflict; the same id for another visitor is another event.
//! - Only event names a test's metrics read are tallied, so one event costs
//!   the same whatever the visitor's history.

use crate::attribution::{in_pre_period, metric_values, Origin, Tallies};
use crate::experiment::{Catalog, Experiment, Metric};
use crate::ids::{ExperimentId, MetricName, VariantIndex, VisitorId};
use crate::records::{Event, Exposure};
use crate::stats::{Moments, VisitorValue};

use chrono::NaiveDate;

use super::{Outcome, Write};

/// Which tallies: a visitor's attributed events in one phase of one test.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TallyKey {
    pub experiment: ExperimentId,
    pub phase: u32,
    pub visitor: VisitorId,
}

impl TallyKey {
    /// The tallies of an exposure's visitor in its test and phase.
    pub fn of(e: &Exposure) -> TallyKey {
        TallyKey { experiment: e.experiment.clone(), phase: e.phase, visitor: e.visitor.clone() }
    }
}

/// Which aggregate row: one metric's sums for one variant and shop-local day of
/// first exposure, in one phase of one test. The day is a calendar date,
/// not an offset from the test's `start`, so editing `start` moves nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AggregateKey {
    pub experiment: ExperimentId,
    pub phase: u32,
    pub variant: VariantIndex,
    pub date: NaiveDate,
    pub metric: MetricName,
}

/// Which segment row: one metric's sums for one variant over the visitors
/// whose first exposure kept `value` for the segment attribute `attribute`
/// ([`crate::records::Exposure::attributes`]), in one phase of one test.
/// Rows are kept by raw value, so an edit of `segments.toml` regroups them
/// as it is read, and the visitors without the attribute are the test's
/// total less every value's. No day: a breakdown shows totals only, and a
/// row per day would make a breakdown read twenty times the rows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentKey {
    pub experiment: ExperimentId,
    pub phase: u32,
    pub attribute: String,
    pub value: String,
    pub variant: VariantIndex,
    pub metric: MetricName,
}

impl SegmentKey {
    /// The segment row of the visitors of aggregate row `key` with `value`
    /// for `attribute`.
    pub fn of(key: &AggregateKey, attribute: &str, value: &str) -> SegmentKey {
        SegmentKey {
            experiment: key.experiment.clone(),
            phase: key.phase,
            attribute: attribute.to_owned(),
            value: value.to_owned(),
            variant: key.variant,
            metric: key.metric.clone(),
        }
    }
}

/// Which value index: one capped metric in one phase of one test
/// ([`crate::capping`] reads a percentile cap and the visitors above it
/// from the top of it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CappedScope {
    pub experiment: ExperimentId,
    pub phase: u32,
    pub metric: MetricName,
}

impl CappedScope {
    /// The index of an aggregate row's metric.
    pub fn of(key: &AggregateKey) -> CappedScope {
        CappedScope { experiment: key.experiment.clone(), phase: key.phase, metric: key.metric.clone() }
    }

    /// The index of `metric` in the test's current phase.
    pub fn current(exp: &Experiment, metric: &MetricName) -> CappedScope {
        CappedScope { experiment: exp.id.clone(), phase: exp.allocation_version, metric: metric.clone() }
    }
}

/// One visitor in a capped metric's value index: the row it counts in
/// (variant and day) and its value. Only a visitor with a side the index
/// keeps ([`CappedSide::kept`]) has an entry: a cap of 0 or more cuts
/// nothing from the zeros, and a cap at or above the index's floor nothing
/// from the visitors at or below it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CappedEntry {
    pub variant: VariantIndex,
    pub date: NaiveDate,
    pub value: VisitorValue,
}

impl CappedEntry {
    /// The entry of a visitor with `value` in the row `key`, if an index
    /// with `floor` keeps one.
    pub fn of(key: &AggregateKey, value: VisitorValue, floor: Option<f64>) -> Option<CappedEntry> {
        CappedSide::BOTH.iter().any(|side| side.kept(value, floor).is_some()).then_some(CappedEntry {
            variant: key.variant,
            date: key.date,
            value,
        })
    }
}

/// The side of the index an entry is ordered by: the metric's value, or
/// its CUPED covariate (capped alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CappedSide {
    Value,
    Covariate,
}

impl CappedSide {
    pub const BOTH: [CappedSide; 2] = [CappedSide::Value, CappedSide::Covariate];

    /// What this side orders by; 0 means no entry on it.
    pub fn of(self, v: VisitorValue) -> f64 {
        match self {
            CappedSide::Value => v.x,
            CappedSide::Covariate => v.pre,
        }
    }

    /// This side of `v`, if an index with `floor` keeps it: not 0, and
    /// above the floor when there is one.
    pub fn kept(self, v: VisitorValue, floor: Option<f64>) -> Option<f64> {
        Some(self.of(v)).filter(|x| *x != 0.0 && floor.is_none_or(|f| *x > f))
    }
}

/// What a value index counts: the phase's visitors it covers (each added
/// while the metric was capped; the report trusts the index only when this
/// equals the rows' visitors), and of those, how many have a value above 0
/// and below 0 (a percentile is found by rank: the zeros, which the index
/// leaves out, sit between the two). The counts cover every visitor, the
/// entries only those above the floor.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CappedCounts {
    pub covered: u64,
    pub positive: u64,
    pub negative: u64,
    /// The value at or below which the index keeps no side of a visitor
    /// (`None`: it keeps every side that is not 0). Raised, never lowered,
    /// by [`crate::capping::floor_to_raise`] once the index holds far more
    /// visitors than its cap reads, so that most writes change no entry;
    /// `offerlab rebuild` starts it afresh.
    pub floor: Option<f64>,
}

impl CappedCounts {
    /// Visitors with a value other than 0: the index's value side.
    pub fn nonzero(&self) -> u64 {
        self.positive + self.negative
    }

    /// Adds a change of (covered, positive, negative); counts never go
    /// below 0.
    pub fn add(&mut self, [covered, positive, negative]: [i64; 3]) {
        self.covered = self.covered.saturating_add_signed(covered);
        self.positive = self.positive.saturating_add_signed(positive);
        self.negative = self.negative.saturating_add_signed(negative);
    }
}

/// What an event id already stands for, for its visitor.
pub enum Stored {
    New,
    Same,
    /// The visitor's id was stored with another name or value.
    Different(Event),
}

impl Stored {
    /// How `stored`, kept under the id of `sent`, stands to it: the same
    /// event when visitor, name and value agree. The time is not compared:
    /// a retry that leaves `ts` out gets a new server time on each try, and
    /// must read as a duplicate, never a conflict (a client that followed
    /// the conflict's advice would pick a new id and double the event).
    /// Every store compares through this one rule.
    pub fn compare(stored: Option<&Event>, sent: &Event) -> Stored {
        match stored {
            None => Stored::New,
            Some(s)
                if s.visitor == sent.visitor && s.name == sent.name && s.value.to_bits() == sent.value.to_bits() =>
            {
                Stored::Same
            }
            Some(s) => Stored::Different(s.clone()),
        }
    }
}

/// One transaction's view of a store: point reads that see the
/// transaction's own earlier writes, and writes that commit together.
pub trait Ledger {
    type Error;

    /// Every (test, phase) first exposure of a visitor.
    fn exposures_of(&self, visitor: &VisitorId) -> Result<Vec<Exposure>, Self::Error>;
    fn put_exposures(&self, visitor: &VisitorId, list: &[Exposure]) -> Result<(), Self::Error>;
    /// Whether `e.id` is new for `e.visitor`, stored as the same event, or
    /// as another one.
    fn event_by_id(&self, e: &Event) -> Result<Stored, Self::Error>;
    /// Every event of a visitor.
    fn events_of(&self, visitor: &VisitorId) -> Result<Vec<Event>, Self::Error>;
    /// Stores a new event.
    fn put_event(&self, e: &Event) -> Result<(), Self::Error>;
    fn tallies(&self, key: &TallyKey) -> Result<Tallies, Self::Error>;
    fn put_tallies(&self, key: &TallyKey, t: &Tallies) -> Result<(), Self::Error>;
    /// Applies `change` to one aggregate row; a row left with no visitors
    /// is removed.
    fn update_aggregate(&self, key: &AggregateKey, change: Change) -> Result<(), Self::Error>;
    /// Applies `change` to the segment row of aggregate row `row`'s
    /// visitors whose `attribute` is `value` ([`SegmentKey::of`]); a row
    /// left with no visitors is removed. Takes the parts, not the key: a
    /// backend that sums by encoded key need not build one per call.
    fn update_segment(
        &self,
        row: &AggregateKey,
        attribute: &str,
        value: &str,
        change: Change,
    ) -> Result<(), Self::Error>;
    /// Moves `visitor`'s entry in the value index of the row's capped
    /// metric as `change` says ([`Change::entries`]), and its counts
    /// ([`Change::counts`]).
    fn update_capped(&self, key: &AggregateKey, visitor: &VisitorId, change: Change) -> Result<(), Self::Error>;
}

/// One visitor's change to an aggregate row. Additive, so a backend may
/// apply it as an increment without reading the row first (PostgreSQL
/// does, so replicas never read-modify-write a shared row):
/// `n += visitors`, `Σx += x₁ − x₀`, `Σx² += x₁² − x₀²`, and likewise for
/// `y`, `y²`, `x·y`, `c`, `c²` and `x·c`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub visitors: i64,
    pub old: VisitorValue,
    pub new: VisitorValue,
}

impl Change {
    /// A visitor joins the row with value `v`.
    pub fn add(v: VisitorValue) -> Change {
        Change { visitors: 1, old: VisitorValue::ZERO, new: v }
    }

    /// A visitor counted with `v` leaves the row.
    pub fn remove(v: VisitorValue) -> Change {
        Change { visitors: -1, old: v, new: VisitorValue::ZERO }
    }

    /// A visitor already in the row moves from `old` to `new`.
    pub fn delta(old: VisitorValue, new: VisitorValue) -> Change {
        Change { visitors: 0, old, new }
    }

    pub fn apply(&self, m: &mut Moments) {
        m.n = m.n.saturating_add_signed(self.visitors);
        m.apply_delta(self.old, self.new);
    }

    /// The visitor's value-index entry in the row `key` before and after
    /// the change, in an index with `floor`: none where the visitor is not
    /// in the row, or has nothing the index keeps.
    pub fn entries(&self, key: &AggregateKey, floor: Option<f64>) -> (Option<CappedEntry>, Option<CappedEntry>) {
        let before = if self.visitors > 0 { None } else { CappedEntry::of(key, self.old, floor) };
        let after = if self.visitors < 0 { None } else { CappedEntry::of(key, self.new, floor) };
        (before, after)
    }

    /// How the change moves its index's counts: (covered, positive,
    /// negative).
    pub fn counts(&self) -> [i64; 3] {
        let sign =
            |v: VisitorValue, counted: bool| [0, i64::from(counted && v.x > 0.0), i64::from(counted && v.x < 0.0)];
        let (new, old) = (sign(self.new, self.visitors >= 0), sign(self.old, self.visitors <= 0));
        [self.visitors, new[1] - old[1], new[2] - old[2]]
    }
}

/// The visitor's tallies for one exposure: their events at or after it, of
/// the names the test's metrics read, and for each CUPED metric its
/// event's tally in the pre-period.
pub fn attributed(catalog: &Catalog, exp: &Experiment, e: &Exposure, events: &[Event]) -> Tallies {
    let mut t = Tallies::from_events(
        e.ts,
        events.iter().filter(|ev| catalog.reads(exp, &ev.name)).map(|ev| (&ev.name, ev.value, ev.ts)),
    );
    t.origin = Some(Origin { variant: e.variant, at: e.ts });
    for metric in catalog.cuped_metrics(exp) {
        for ev in events.iter().filter(|ev| Some(&ev.name) == metric.single_event()) {
            if in_pre_period(metric, e.ts, ev.ts) {
                t.add_pre(&metric.name, ev.value);
            }
        }
    }
    t
}

/// Tallies and aggregates recomputed from the raw records, as `rebuild`
/// writes them and `verify` compares them; fed one visitor at a time, so a
/// store can stream its raw records.
#[derive(Default)]
pub struct Recomputed {
    pub aggregates: std::collections::BTreeMap<AggregateKey, crate::stats::Moments>,
    pub segments: std::collections::BTreeMap<SegmentKey, crate::stats::Moments>,
    pub tallies: Vec<(TallyKey, Tallies)>,
    pub capped: CappedIndex,
}

impl Recomputed {
    /// Adds one visitor: all their first exposures and all their events.
    pub fn visitor(&mut self, catalog: &Catalog, exposures: &[Exposure], events: &[Event]) {
        for e in exposures {
            let Some(exp) = catalog.get(&e.experiment) else { continue };
            let t = attributed(catalog, exp, e, events);
            for (metric, v) in crate::attribution::metric_values(exp, catalog, &t) {
                let key = aggregate_key(exp, e, &metric.name);
                if metric.cap.is_some() {
                    let scope = CappedScope::of(&key);
                    self.capped.counts.entry(scope.clone()).or_default().add(Change::add(v).counts());
                    if let Some(entry) = CappedEntry::of(&key, v, None) {
                        self.capped.entries.insert((scope, e.visitor.clone()), entry);
                    }
                }
                for (attribute, value) in &e.attributes {
                    self.segments.entry(SegmentKey::of(&key, attribute, value)).or_default().add_visitor(v);
                }
                self.aggregates.entry(key).or_default().add_visitor(v);
            }
            self.tallies.push((TallyKey::of(e), t));
        }
    }

    /// Where the stored aggregates differ from these, one line each
    /// (counts exactly, sums to a relative 1e-9): empty when they agree.
    pub fn differences(&self, stored: &std::collections::BTreeMap<AggregateKey, crate::stats::Moments>) -> Vec<String> {
        row_differences(&self.aggregates, stored, row_name)
    }

    /// Where the stored segment rows differ from these, likewise.
    pub fn segment_differences(
        &self,
        stored: &std::collections::BTreeMap<SegmentKey, crate::stats::Moments>,
    ) -> Vec<String> {
        row_differences(&self.segments, stored, |k| {
            format!("{} phase {} variant {} {} {}={}", k.experiment, k.phase, k.variant, k.metric, k.attribute, k.value)
        })
    }
}

fn row_name(k: &AggregateKey) -> String {
    format!("{} phase {} variant {} {} {}", k.experiment, k.phase, k.variant, k.date, k.metric)
}

/// Where `stored` rows differ from the recomputed `want`, one line each.
fn row_differences<K: Ord>(
    want: &std::collections::BTreeMap<K, crate::stats::Moments>,
    stored: &std::collections::BTreeMap<K, crate::stats::Moments>,
    name: impl Fn(&K) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, want) in want {
        match stored.get(k) {
            None => out.push(format!("{}: missing (the raw records give {} visitors)", name(k), want.n)),
            Some(got) if !got.approx_eq(want, 1e-9) => {
                out.push(format!("{}: stored {got:?}, the raw records give {want:?}", name(k)))
            }
            Some(_) => {}
        }
    }
    for (k, got) in stored {
        if !want.contains_key(k) && got.n > 0 {
            out.push(format!("{}: stored with {} visitors the raw records do not have", name(k), got.n));
        }
    }
    out
}

/// Every capped metric's value index: its counts, and its entries.
#[derive(Debug, Default)]
pub struct CappedIndex {
    pub counts: std::collections::BTreeMap<CappedScope, CappedCounts>,
    pub entries: std::collections::BTreeMap<(CappedScope, VisitorId), CappedEntry>,
}

impl CappedIndex {
    /// Where `stored` differs from this recomputed index, one line each
    /// (counts exactly, values to a relative 1e-9): empty when they agree.
    pub fn differences(&self, stored: &CappedIndex) -> Vec<String> {
        let name = |s: &CappedScope| format!("{} phase {} {} (value index)", s.experiment, s.phase, s.metric);
        let mut out = Vec::new();
        // The floor is the index's own choice, not something the raw
        // records give: the counts compare without it, the entries under it.
        let floor = |s: &CappedScope| stored.counts.get(s).and_then(|c| c.floor);
        for (scope, want) in &self.counts {
            let got = stored.counts.get(scope).copied().unwrap_or_default();
            if (got.covered, got.positive, got.negative) != (want.covered, want.positive, want.negative) {
                out.push(format!("{}: counts stored {got:?}, the raw records give {want:?}", name(scope)));
            }
        }
        for (scope, got) in &stored.counts {
            if !self.counts.contains_key(scope) && got.covered > 0 {
                out.push(format!("{}: stored for {} visitors the raw records do not have", name(scope), got.covered));
            }
        }
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
        let same = |a: &CappedEntry, b: &CappedEntry| {
            a.variant == b.variant
                && a.date == b.date
                && close(a.value.x, b.value.x)
                && close(a.value.y, b.value.y)
                && close(a.value.pre, b.value.pre)
        };
        let kept = |(scope, _): &(CappedScope, VisitorId), e: &CappedEntry| {
            CappedSide::BOTH.iter().any(|side| side.kept(e.value, floor(scope)).is_some())
        };
        let mut wrong = 0;
        for (key, want) in self.entries.iter().filter(|(k, e)| kept(k, e)) {
            wrong += usize::from(!stored.entries.get(key).is_some_and(|got| same(got, want)));
        }
        wrong += stored.entries.iter().filter(|(k, e)| kept(k, e) && !self.entries.contains_key(*k)).count();
        if wrong > 0 {
            out.push(format!("value indexes: {wrong} visitors' entries differ from the raw records"));
        }
        out
    }
}

pub fn aggregate_key(exp: &Experiment, e: &Exposure, metric: &MetricName) -> AggregateKey {
    AggregateKey {
        experiment: e.experiment.clone(),
        phase: e.phase,
        variant: e.variant,
        date: exp.local_day(e.ts),
        metric: metric.clone(),
    }
}

/// One visitor's change to `metric`'s row `key`, to the rows of the
/// segment values their exposure `x` kept, and to the metric's value index
/// when it is capped: the one way the rules touch any of them.
fn update_row<L: Ledger>(
    tx: &L,
    metric: &Metric,
    key: &AggregateKey,
    x: &Exposure,
    change: Change,
) -> Result<(), L::Error> {
    let visitor = &x.visitor;
    tx.update_aggregate(key, change)?;
    for (attribute, value) in &x.attributes {
        tx.update_segment(key, attribute, value, change)?;
    }
    if metric.cap.is_some() {
        tx.update_capped(key, visitor, change)?;
    }
    Ok(())
}

/// Applies one write.
pub fn apply<L: Ledger>(tx: &L, catalog: &Catalog, write: &Write) -> Result<Outcome, L::Error> {
    match write {
        Write::Exposure(e) => apply_exposure(tx, catalog, e),
        Write::Event(e) => apply_event(tx, catalog, e),
    }
}

/// A first exposure adds the visitor to its day's aggregates with the
/// events it already has at or after the exposure (they may have arrived
/// first). An exposure earlier than the stored one moves the visitor; a
/// later one is a duplicate.
fn apply_exposure<L: Ledger>(tx: &L, catalog: &Catalog, e: &Exposure) -> Result<Outcome, L::Error> {
    let Some(exp) = catalog.get(&e.experiment) else { return Ok(Outcome::Duplicate) };
    let mut list = tx.exposures_of(&e.visitor)?;
    let previous = list.iter().position(|x| x.experiment == e.experiment && x.phase == e.phase);
    if previous.is_some_and(|i| list[i].ts <= e.ts) {
        return Ok(Outcome::Duplicate);
    }
    let tallies = attributed(catalog, exp, e, &tx.events_of(&e.visitor)?);
    let tally_key = TallyKey::of(e);
    if let Some(i) = previous {
        let old = tx.tallies(&tally_key)?;
        for (metric, v) in metric_values(exp, catalog, &old) {
            update_row(tx, metric, &aggregate_key(exp, &list[i], &metric.name), &list[i], Change::remove(v))?;
        }
        list[i] = e.clone();
    } else {
        list.push(e.clone());
    }
    for (metric, v) in metric_values(exp, catalog, &tallies) {
        update_row(tx, metric, &aggregate_key(exp, e, &metric.name), e, Change::add(v))?;
    }
    tx.put_tallies(&tally_key, &tallies)?;
    tx.put_exposures(&e.visitor, &list)?;
    Ok(Outcome::Accepted)
}

/// An event updates the tallies, and the aggregates of the metrics that read
/// it, of every test the visitor was first exposed to at or before it, and
/// the covariate of every CUPED metric whose pre-period it falls in. Its
/// cost does not depend on how many events the visitor already has.
fn apply_event<L: Ledger>(tx: &L, catalog: &Catalog, ev: &Event) -> Result<Outcome, L::Error> {
    match tx.event_by_id(ev)? {
        Stored::Same => return Ok(Outcome::Duplicate),
        Stored::Different(_) => return Ok(Outcome::Conflict),
        Stored::New => {}
    }
    tx.put_event(ev)?;
    for x in tx.exposures_of(&ev.visitor)? {
        let Some(exp) = catalog.get(&x.experiment) else { continue };
        if !catalog.reads(exp, &ev.name) {
            continue;
        }
        let in_pre = |m: &&Metric| m.single_event() == Some(&ev.name) && in_pre_period(m, x.ts, ev.ts);
        if x.ts > ev.ts && !catalog.cuped_metrics(exp).any(|m| in_pre(&m)) {
            continue;
        }
        let key = TallyKey::of(&x);
        let old = tx.tallies(&key)?;
        let mut new = old.clone();
        if x.ts <= ev.ts {
            new.add(&ev.name, ev.value);
        }
        for metric in catalog.cuped_metrics(exp).filter(in_pre) {
            new.add_pre(&metric.name, ev.value);
        }
        let before = metric_values(exp, catalog, &old);
        for ((metric, old_xy), (_, new_xy)) in before.into_iter().zip(metric_values(exp, catalog, &new)) {
            if old_xy != new_xy {
                update_row(tx, metric, &aggregate_key(exp, &x, &metric.name), &x, Change::delta(old_xy, new_xy))?;
            }
        }
        tx.put_tallies(&key, &new)?;
    }
    Ok(Outcome::Accepted)
}
