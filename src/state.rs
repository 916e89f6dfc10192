//! What every request handler shares: the loaded experiments (swapped
//! atomically on reload), the store, and the reports built from both.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::analysis::{analyze, Report};
use crate::experiment::{load_dir, Catalog, Experiment, ValidationErrors};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

pub struct AppState {
    catalog: ArcSwap<Catalog>,
    experiments_dir: PathBuf,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(catalog: Catalog, experiments_dir: PathBuf, store: Arc<Store>, metrics: Arc<Metrics>) -> Self {
        AppState { catalog: ArcSwap::from_pointee(catalog), experiments_dir, store, metrics }
    }

    /// The current set of experiments; a cheap snapshot that stays
    /// consistent for the whole request even if a reload happens meanwhile.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Re-reads the experiments folder and swaps the new set in. An invalid
    /// folder is refused and the running set stays.
    pub fn reload(&self) -> Result<Arc<Catalog>, ValidationErrors> {
        let fresh = Arc::new(load_dir(&self.experiments_dir)?);
        self.catalog.store(fresh.clone());
        tracing::info!(experiments = fresh.len(), "reloaded experiment definitions");
        Ok(fresh)
    }

    /// The report of one test as of `now` (the shop-local day of it).
    pub fn report(&self, catalog: &Catalog, exp: &Experiment, now: DateTime<Utc>) -> Result<Report, StoreError> {
        let rows = self.store.aggregate_rows(exp)?;
        Ok(analyze(exp, catalog, &rows, exp.local_day(now)))
    }
}
