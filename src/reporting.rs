//! Building a test's report from the store: the aggregate rows of its
//! current phase, capped metrics corrected from the top of their value
//! index (or re-aggregated from the visitors' tallies where the index does
//! not cover the phase), then the analysis ([`crate::analysis`]) off the
//! async workers.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::aggregates::AggregateRow;
use crate::analysis::{analyze, Report};
use crate::capping::{self, CapApplied, Collector, Cut, Quantile};
use crate::experiment::metric::{Cap, Metric};
use crate::experiment::{Catalog, Experiment, Segment};
use crate::ids::VisitorId;
use crate::segments::{self as by_segment, Breakdown};
use crate::store::rules::CappedSide;
use crate::store::{Attributes, Store, StoreError};

/// The report of one test from `store` as of `now` (the shop-local day of
/// it), from the rows of [`report_rows`] with every cap applied.
pub async fn report(
    store: &dyn Store,
    catalog: &Arc<Catalog>,
    exp: &Arc<Experiment>,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    report_with(store, catalog, exp, Collector::new(exp, catalog), now).await
}

/// [`report`] with the caps `caps` collects; the analysis of the rows read
/// runs on a blocking thread: it is arithmetic over every day and metric,
/// and would hold up an async worker.
pub async fn report_with(
    store: &dyn Store,
    catalog: &Arc<Catalog>,
    exp: &Arc<Experiment>,
    caps: Collector<'_>,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let (rows, capping, cuts) = capped_rows(store, exp, caps).await?;
    let segments = catalog.segments().to_vec();
    let sums = match segments.is_empty() {
        true => None,
        false => Some(segment_sums(store, catalog, exp, &segments, &rows, &capping, &cuts).await?),
    };
    let (catalog, exp) = (catalog.clone(), exp.clone());
    tokio::task::spawn_blocking(move || {
        let today = exp.local_day(now);
        let mut report = analyze(&exp, &catalog, &rows, capping, today);
        if let Some(sums) = sums {
            let breakdowns = by_segment::finish(&exp, &catalog, &segments, sums);
            by_segment::attach(&mut report, &exp, &catalog, breakdowns);
        }
        report
    })
    .await
    .map_err(|e| StoreError::Internal(format!("the analysis did not finish: {e}")))
}

/// The test's breakdown by each of `segments` ([`crate::segments`]), each
/// metric capped where the whole test's report caps it.
pub async fn segments(
    store: &dyn Store,
    catalog: &Arc<Catalog>,
    exp: &Arc<Experiment>,
    segments: Vec<Segment>,
) -> Result<Vec<Breakdown>, StoreError> {
    let (rows, capping, cuts) = capped_rows(store, exp, Collector::new(exp, catalog)).await?;
    let sums = segment_sums(store, catalog, exp, &segments, &rows, &capping, &cuts).await?;
    let (catalog, exp) = (catalog.clone(), exp.clone());
    tokio::task::spawn_blocking(move || by_segment::finish(&exp, &catalog, &segments, sums))
        .await
        .map_err(|e| StoreError::Internal(format!("the breakdown by segment did not finish: {e}")))
}

/// Each segment's per-value sums ([`by_segment::ValueSums`]) of the
/// test's capped `rows`: from the segment rows when every cap came from its
/// value index (each cut taken by the values of the visitors above it),
/// else from a pass over every visitor's tallies.
async fn segment_sums(
    store: &dyn Store,
    catalog: &Arc<Catalog>,
    exp: &Arc<Experiment>,
    segments: &[Segment],
    rows: &[AggregateRow],
    capping: &[CapApplied],
    cuts: &[Cut],
) -> Result<Vec<Vec<by_segment::ValueSums>>, StoreError> {
    if cuts.len() == capping.iter().filter(|c| c.value.is_some()).count() {
        let stored = store.segment_rows(exp).await?;
        let above: Vec<VisitorId> = cuts.iter().flat_map(|c| c.entries.iter().map(|(v, _)| v.clone())).collect();
        let attributes = if above.is_empty() { Attributes::new() } else { store.attributes_of(exp, above).await? };
        Ok(by_segment::from_rows(exp, segments, rows, &stored, cuts, &attributes))
    } else {
        let mut collect = by_segment::Collector::new(exp.clone(), catalog.clone(), segments.to_vec(), capping);
        store.visit_tallies(exp, true, &mut |v| collect.visit(v)).await?;
        Ok(collect.into_sums())
    }
}

/// The aggregate rows a report of the test's current phase reads: the
/// stored ones, with the capped metrics of `caps` capped, and what each cap
/// did.
pub async fn report_rows(
    store: &dyn Store,
    exp: &Experiment,
    caps: Collector<'_>,
) -> Result<(Vec<AggregateRow>, Vec<CapApplied>), StoreError> {
    let (rows, applied, _) = capped_rows(store, exp, caps).await?;
    Ok((rows, applied))
}

/// [`report_rows`], and for each cap its value index answered, the
/// visitors it cut.
pub async fn capped_rows(
    store: &dyn Store,
    exp: &Experiment,
    mut caps: Collector<'_>,
) -> Result<(Vec<AggregateRow>, Vec<CapApplied>, Vec<Cut>), StoreError> {
    let mut rows = store.aggregate_rows(exp).await?;
    let order = caps.metrics();
    let mut applied = Vec::new();
    let mut cuts = Vec::new();
    for (metric, cap) in &order {
        if let Some((a, cut)) = from_index(store, exp, metric, *cap, &mut rows).await? {
            applied.push(a);
            cuts.extend(cut);
        }
    }
    caps.skip(&applied);
    if caps.needed() {
        store.visit_tallies(exp, false, &mut |v| caps.visit(v)).await?;
    }
    applied.extend(caps.apply(&mut rows));
    applied.sort_by_key(|a| order.iter().position(|(m, _)| m.name.as_str() == a.metric));
    Ok((rows, applied, cuts))
}

/// Caps one metric's rows from its value index: the percentile's order
/// statistics read by rank, then the visitors above the cap, whom it also
/// returns (none when the cap has no value). `None`, the rows untouched,
/// when the index does not cover every visitor of the phase or cannot
/// answer (a cap below 0 would cut visitors with a value of 0, and a cap
/// below the index's floor visitors at or below it, neither of which it
/// holds).
pub async fn from_index(
    store: &dyn Store,
    exp: &Experiment,
    metric: &Metric,
    cap: Cap,
    rows: &mut [AggregateRow],
) -> Result<Option<(CapApplied, Option<Cut>)>, StoreError> {
    let name = metric.name.as_str();
    let n: u64 = rows.iter().filter(|r| r.metric == name).map(|r| r.moments.n).sum();
    let counts = store.capped_counts(exp, &metric.name).await?;
    if counts.covered != n {
        return Ok(None);
    }
    let value = match cap {
        Cap::Absolute(a) => Some(a),
        Cap::Percentile { percentile, ignore_zeros } => match Quantile::of(percentile, ignore_zeros, n, counts) {
            None => None,
            Some(q) => {
                let read = match q.reads() {
                    Some((skip, take)) => store.capped_values(exp, &metric.name, counts.floor, skip, take).await?,
                    None => Vec::new(),
                };
                let Ok(value) = q.value(&read) else { return Ok(None) };
                Some(value)
            }
        },
    };
    let applied = |capped_visitors| CapApplied { metric: name.to_owned(), cap, value, capped_visitors, visitors: n };
    let Some(limit) = value else { return Ok(Some((applied(0), None))) };
    if limit < counts.floor.unwrap_or(0.0).max(0.0) {
        return Ok(None);
    }
    let above = store.capped_top(exp, &metric.name, CappedSide::Value, limit).await?;
    let covariates = match metric.cuped {
        Some(_) => store.capped_top(exp, &metric.name, CappedSide::Covariate, limit).await?,
        None => Vec::new(),
    };
    let (capped, excess) = capping::excess(limit, above.iter().chain(&covariates));
    capping::take_excess(exp, name, rows, &excess);
    let entries = above.into_iter().chain(covariates).collect();
    Ok(Some((applied(capped), Some(Cut { metric: name.to_owned(), limit, entries }))))
}
