//! Keeping each capped metric's value index small: its floor raised as the
//! test's visitors grow.
//!
//! A percentile cap reads the index's top (the 99th percentile of a
//! million visitors is 10,000 places down), but the index holds every
//! visitor with a value, and every event that moves one rewrites its
//! entry. Once the index holds several times what its cap reads, its floor
//! ([`crate::store::CappedCounts::floor`]) goes up to the value
//! [`FloorRanks`] picks; from then on a visitor at or below it has no
//! entry, and an event that leaves a visitor there writes none. An
//! absolute cap's floor is the cap itself. A floor is never lowered: where
//! traffic shifts so far that the cap reads below it, the report takes
//! the pass over every visitor's tallies (exact, slower) until
//! `offerlab rebuild` starts the index afresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::capping::{capped_metrics, FloorRanks};
use crate::experiment::metric::Cap;
use crate::experiment::{Catalog, Experiment};
use crate::ids::MetricName;
use crate::store::rules::CappedScope;
use crate::store::{CappedCounts, Store, StoreError};

/// How often the service looks at its indexes' floors. Where a test's
/// visitors all climb together (every event an order), they pass a floor
/// soon after it rises, and each event above it rewrites an entry: looked
/// at four times a second, the floor follows them closely enough that
/// about a quarter of such events write one, against nearly half once a
/// second. A look at an index that no write has moved since reads its
/// test's aggregate rows and its counts, and nothing of the index.
pub const EVERY: Duration = Duration::from_millis(250);

/// Raises the floor of `metric`'s index in the test's current phase where
/// its cap allows; the new floor, if it was raised.
pub async fn raise(
    store: &dyn Store,
    exp: &Experiment,
    metric: &MetricName,
    cap: Cap,
    counts: CappedCounts,
) -> Result<Option<f64>, StoreError> {
    if counts.covered == 0 {
        return Ok(None);
    }
    let floor = match cap {
        Cap::Absolute(a) => (a >= 0.0).then_some(a),
        Cap::Percentile { percentile, ignore_zeros } => {
            let Some(ranks) = FloorRanks::of(percentile, ignore_zeros, counts) else { return Ok(None) };
            let (skip, take) = ranks.reads();
            let read = store.capped_values(exp, metric, counts.floor, skip, take).await?;
            // Worth a raise only when the index reaches `probe`.
            if read.len() < take {
                return Ok(None);
            }
            match ranks.past_tie(&read) {
                Some((skip, take)) => {
                    let more = store.capped_values(exp, metric, counts.floor, skip, take).await?;
                    FloorRanks::below_tie(read[0], &more)
                }
                None => ranks.floor(&read),
            }
        }
    };
    match floor {
        Some(f) if counts.floor.is_none_or(|old| f > old) => {
            Ok(store.raise_capped_floor(exp, metric, f).await?.then_some(f))
        }
        _ => Ok(None),
    }
}

/// What an index looked like when last looked at: its counts, and its
/// metric's visitors and raw sums over the phase's rows (which move with
/// every value, where the counts need not).
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    counts: CappedCounts,
    sums: [u64; 4],
}

/// Raises every floor of the catalog's tests that can go up; `seen` keeps
/// how each index looked when last looked at, so an index no write has
/// moved since is not read again. How many floors went up.
pub async fn raise_all(
    store: &dyn Store,
    catalog: &Catalog,
    seen: &mut HashMap<CappedScope, Seen>,
) -> Result<usize, StoreError> {
    let mut raised = 0;
    for exp in catalog.experiments() {
        let capped = capped_metrics(exp, catalog);
        if capped.is_empty() {
            continue;
        }
        let rows = store.aggregate_rows(exp).await?;
        for (name, cap) in capped {
            let Some(metric) = catalog.metric(name).map(|m| &m.name) else { continue };
            let mut sums = [0.0; 4];
            for m in rows.iter().filter(|r| r.metric == name).map(|r| &r.moments) {
                for (total, x) in sums.iter_mut().zip([m.n as f64, m.sum, m.sum_sq, m.pre_sum]) {
                    *total += x;
                }
            }
            let now = Seen { counts: store.capped_counts(exp, metric).await?, sums: sums.map(f64::to_bits) };
            let scope = CappedScope::current(exp, metric);
            if seen.get(&scope) == Some(&now) {
                continue;
            }
            let up = raise(store, exp, metric, cap, now.counts).await?;
            if let Some(floor) = up {
                tracing::debug!(experiment = %exp.id, metric = %metric, floor, "raised a value index's floor");
                raised += 1;
                // Looked at again on the next round, with its new floor.
                seen.remove(&scope);
            } else {
                seen.insert(scope, now);
            }
        }
    }
    Ok(raised)
}

/// Raises the floors every [`EVERY`] while the service runs, over the
/// catalog `catalog` gives at each round (reloads change it); a store that
/// fails is tried again on the next round. An outage is logged when it
/// starts, not every second it lasts (the engine's health reports it).
pub fn start(
    store: Arc<dyn Store>,
    catalog: impl Fn() -> Arc<Catalog> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = HashMap::new();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match raise_all(store.as_ref(), &catalog(), &mut seen).await {
                Ok(_) => failing = false,
                Err(e) if failing && e.retryable() => {
                    tracing::debug!(error = %e, "could not raise the value indexes' floors; trying again")
                }
                Err(e) => {
                    failing = true;
                    tracing::warn!(error = %e, "could not raise the value indexes' floors; trying again");
                }
            }
        }
    })
}
