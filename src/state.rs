//! What every request handler shares: the loaded experiments (swapped
//! atomically on reload), the store, and the reports built from both.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::aggregates::AggregateRow;
use crate::allocation::{self, Check};
use crate::analysis::{analyze, Report};
use crate::capping::{CapApplied, Collector};
use crate::clock::Clock;
use crate::experiment::{load_dir, Catalog, Experiment, ValidationError, ValidationErrors};
use crate::features::Features;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

pub struct AppState {
    catalog: ArcSwap<Catalog>,
    /// The GrowthBook SDK payload of the current catalog, built with it.
    features: ArcSwap<Features>,
    experiments_dir: PathBuf,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// What handlers read the time from.
    pub clock: Clock,
}

impl AppState {
    pub fn new(
        catalog: Catalog,
        experiments_dir: PathBuf,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        let features = ArcSwap::from_pointee(Features::new(&catalog, clock.now()));
        AppState { catalog: ArcSwap::from_pointee(catalog), features, experiments_dir, store, metrics, clock }
    }

    /// The GrowthBook SDK payload of the current definitions.
    pub fn features(&self) -> Arc<Features> {
        self.features.load_full()
    }

    /// The current set of experiments; a cheap snapshot that stays
    /// consistent for the whole request even if a reload happens meanwhile.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Re-reads the experiments folder and swaps the new set in. An invalid
    /// folder is refused and the running set stays.
    pub async fn reload(&self) -> Result<Arc<Catalog>, ValidationErrors> {
        let dir = self.experiments_dir.clone();
        let fresh =
            Arc::new(tokio::task::spawn_blocking(move || load_dir(&dir)).await.map_err(|e| {
                storage_error(StoreError::Internal(format!("reading the folder did not finish: {e}")))
            })??);
        admit(self.store.as_ref(), &fresh).await?;
        self.catalog.store(fresh.clone());
        self.features.store(Arc::new(Features::new(&fresh, self.clock.now())));
        tracing::info!(experiments = fresh.len(), "reloaded experiment definitions");
        Ok(fresh)
    }

    /// Visitors of earlier allocation phases of a test, left out of its report.
    pub async fn earlier_phase_visitors(&self, exp: &Experiment) -> Result<u64, StoreError> {
        self.store.earlier_phase_visitors(exp).await
    }

    /// The report of one test as of `now` (the shop-local day of it).
    pub async fn report(
        &self,
        catalog: &Arc<Catalog>,
        exp: &Arc<Experiment>,
        now: DateTime<Utc>,
    ) -> Result<Report, StoreError> {
        report(self.store.as_ref(), catalog, exp, now).await
    }

    /// The report for a list of tests: its verdict and progress are the
    /// full report's, but capped secondary metrics are left uncapped (the
    /// list shows none), which spares a pass over their visitors.
    pub async fn verdict(
        &self,
        catalog: &Arc<Catalog>,
        exp: &Arc<Experiment>,
        now: DateTime<Utc>,
    ) -> Result<Report, StoreError> {
        let (rows, capping) = report_rows(self.store.as_ref(), exp, Collector::for_verdict(exp, catalog)).await?;
        finish(catalog, exp, rows, capping, now).await
    }
}

/// The report of one test from `store` as of `now` (the shop-local day of
/// it), from the rows of [`report_rows`].
pub async fn report(
    store: &dyn Store,
    catalog: &Arc<Catalog>,
    exp: &Arc<Experiment>,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let (rows, capping) = report_rows(store, exp, Collector::new(exp, catalog)).await?;
    finish(catalog, exp, rows, capping, now).await
}

/// The analysis of the rows read, on a blocking thread: it is arithmetic
/// over every day and metric, and would hold up an async worker.
async fn finish(
    catalog: &Arc<Catalog>,
    exp: &Arc<Experiment>,
    rows: Vec<AggregateRow>,
    capping: Vec<CapApplied>,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let (catalog, exp) = (catalog.clone(), exp.clone());
    tokio::task::spawn_blocking(move || {
        let mut report = analyze(&exp, &catalog, &rows, exp.local_day(now));
        report.capping = capping;
        report
    })
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

/// Refuses a catalog whose allocation changes would move visitors of
/// running tests between variants (see [`crate::allocation`]), else
/// remembers the allocations it brings.
pub async fn admit(store: &dyn Store, catalog: &Catalog) -> Result<(), ValidationErrors> {
    for (id, r) in allocations_to_record(store, catalog).await? {
        store.set_allocation(&id, &r).await.map_err(storage_error)?;
    }
    Ok(())
}

fn storage_error(e: StoreError) -> ValidationErrors {
    ValidationErrors(vec![ValidationError { file: "data".into(), line: None, message: e.to_string() }])
}

/// What [`admit`] would do, without writing: the allocations to remember,
/// or every refusal (for `offerlab validate --data`).
pub async fn allocations_to_record(
    store: &dyn Store,
    catalog: &Catalog,
) -> Result<Vec<(String, crate::allocation::AllocationRecord)>, ValidationErrors> {
    let storage = storage_error;
    let mut records = Vec::new();
    let mut refusals = Vec::new();
    for exp in catalog.experiments() {
        let stored = store.allocation(exp.id.as_str()).await.map_err(storage)?;
        let has = store.has_exposures(exp.id.as_str(), exp.allocation_version).await.map_err(storage)?;
        match allocation::check(stored.as_ref(), exp, has) {
            Check::Unchanged => {}
            Check::Record(r) => records.push((exp.id.to_string(), r)),
            Check::Refuse(message) => {
                refusals.push(ValidationError { file: exp.source.clone(), line: exp.variants_line, message })
            }
        }
    }
    if !refusals.is_empty() {
        return Err(ValidationErrors(refusals));
    }
    Ok(records)
}
