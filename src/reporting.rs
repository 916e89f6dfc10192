//! Building a test's report from the store: the aggregate rows of its
//! current phase, capped metrics re-aggregated from the visitors' tallies,
//! then the analysis ([`crate::analysis`]) off the async workers.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::aggregates::AggregateRow;
use crate::analysis::{analyze, Report};
use crate::capping::{CapApplied, Collector};
use crate::experiment::{Catalog, Experiment};
use crate::store::{Store, StoreError};

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
    let (rows, capping) = report_rows(store, exp, caps).await?;
    let (catalog, exp) = (catalog.clone(), exp.clone());
    tokio::task::spawn_blocking(move || analyze(&exp, &catalog, &rows, capping, exp.local_day(now)))
        .await
        .map_err(|e| StoreError::Internal(format!("the analysis did not finish: {e}")))
}

/// The aggregate rows a report of the test's current phase reads: the
/// stored ones, with the capped metrics of `caps` re-aggregated from the
/// visitors' tallies, and what each cap did.
pub async fn report_rows(
    store: &dyn Store,
    exp: &Experiment,
    mut caps: Collector<'_>,
) -> Result<(Vec<AggregateRow>, Vec<CapApplied>), StoreError> {
    let mut rows = store.aggregate_rows(exp).await?;
    if caps.needed() {
        store.visit_tallies(exp, &mut |v| caps.visit(v)).await?;
    }
    let capping = caps.apply(&mut rows);
    Ok((rows, capping))
}
