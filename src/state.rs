//! What every request handler shares: the loaded experiments (swapped
//! atomically on reload) and the folder they come from.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::experiment::{load_dir, Catalog, ValidationErrors};

pub struct AppState {
    catalog: ArcSwap<Catalog>,
    experiments_dir: PathBuf,
}

impl AppState {
    pub fn new(catalog: Catalog, experiments_dir: PathBuf) -> Self {
        AppState {
            catalog: ArcSwap::from_pointee(catalog),
            experiments_dir,
        }
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
}
