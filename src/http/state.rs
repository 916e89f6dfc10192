//! What every request handler shares: the loaded experiments (swapped
//! atomically on reload), the store, the metrics and the clock.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::allocation::{admit, storage_error};
use crate::analysis::Report;
use crate::capping::Collector;
use crate::clock::Clock;
use crate::experiment::notify_file::check_secrets;
use crate::experiment::{load_dir, Catalog, Experiment, ValidationErrors};
use crate::features::Features;
use crate::http::metrics::Metrics;
use crate::reporting::{report, report_with};
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
    /// Woken by every accepted reload (notifications re-evaluate then).
    pub reloaded: tokio::sync::Notify,
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
        AppState {
            catalog: ArcSwap::from_pointee(catalog),
            features,
            experiments_dir,
            store,
            metrics,
            clock,
            reloaded: tokio::sync::Notify::new(),
        }
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
        check_secrets(&fresh)?;
        admit(self.store.as_ref(), &fresh).await?;
        self.catalog.store(fresh.clone());
        self.reloaded.notify_one();
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
        report_with(self.store.as_ref(), catalog, exp, Collector::for_verdict(exp, catalog), now).await
    }
}
