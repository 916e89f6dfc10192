//! Allocation safety. Changing who sees which variant (seed, variants,
//! weights, coverage, namespace, targeting, hash attribute) in a test that
//! already recorded exposures would silently move visitors between arms and
//! corrupt its result. Such a change is refused unless the definition
//! raises `allocation_version`, which starts a new analysis phase: earlier
//! exposures are kept but left out of the new phase's report. A new
//! `timezone` is refused the same way: stored days are calendar days in the
//! offset they were written with. (`start` may change freely: stored days
//! are dates, not offsets from it.)
//!
//! [`admit`] applies these rules when a catalog is loaded over a store
//! (start and reload); [`allocations_to_record`] says what it would do,
//! and [`refusals_on_folder`] and [`refusals_on_postgres`] say it for
//! `offerlab validate --data` and `--store`.

use serde::{Deserialize, Serialize};

use crate::experiment::{Catalog, Experiment, ExperimentId, ValidationError, ValidationErrors, FINGERPRINT_V2};
use crate::store::{Store, StoreError};

/// What was last accepted for a test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    pub version: u32,
    pub fingerprint: String,
    /// The shop's UTC offset: stored days are the shop's calendar days at
    /// the time of writing, so a new offset would split days differently.
    /// Absent in records written before it was kept.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl AllocationRecord {
    pub fn of(exp: &Experiment) -> Self {
        AllocationRecord {
            version: exp.allocation_version,
            fingerprint: exp.allocation_fingerprint(),
            timezone: Some(exp.timezone.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Nothing to do.
    Unchanged,
    /// Accept and remember the new record.
    Record(AllocationRecord),
    /// Refuse, with a sentence that says how to fix it.
    Refuse(String),
}

/// Decides whether `exp` may be loaded over what was stored;
/// `exposures_in_phase` says whether its current phase has data.
pub fn check(stored: Option<&AllocationRecord>, exp: &Experiment, exposures_in_phase: bool) -> Check {
    let now = AllocationRecord::of(exp);
    let Some(before) = stored else { return Check::Record(now) };
    if now == *before {
        return Check::Unchanged;
    }
    if now.version < before.version {
        return Check::Refuse(format!(
            "allocation_version of \"{}\" went down from {} to {}; versions only rise, set it to {} or higher",
            exp.id, before.version, now.version, before.version
        ));
    }
    // A record of an older store names the allocation in the legacy
    // encoding: the same allocation there is upgraded (recorded anew).
    let same_allocation = now.fingerprint == before.fingerprint
        || (!before.fingerprint.starts_with(FINGERPRINT_V2)
            && before.fingerprint == exp.legacy_allocation_fingerprint());
    if now.version == before.version && exposures_in_phase {
        if !same_allocation {
            return Check::Refuse(format!(
                "the allocation of \"{}\" (seed, variants, weights, coverage, namespace or targeting) changed after exposures were recorded, which would silently move visitors between variants; revert the change, or set allocation_version = {} to start a new analysis phase",
                exp.id,
                before.version + 1
            ));
        }
        if let Some(tz) = before.timezone.as_deref().filter(|tz| Some(*tz) != now.timezone.as_deref()) {
            return Check::Refuse(format!(
                "the timezone of \"{}\" changed from {tz} to {} after exposures were recorded, which would file visitors under other days than those already stored; revert the change, or set allocation_version = {} to start a new analysis phase",
                exp.id,
                exp.timezone,
                before.version + 1
            ));
        }
    }
    Check::Record(now)
}

// Admission: what loading a catalog over a store does.

/// Refuses a catalog whose allocation changes would move visitors of
/// running tests between variants (see [`crate::allocation`]), else
/// remembers the allocations it brings.
pub async fn admit(store: &dyn Store, catalog: &Catalog) -> Result<(), ValidationErrors> {
    for (id, r) in allocations_to_record(store, catalog).await? {
        store.set_allocation(&id, &r).await.map_err(storage_error)?;
    }
    Ok(())
}

pub(crate) fn storage_error(e: StoreError) -> ValidationErrors {
    ValidationErrors(vec![ValidationError { file: "data".into(), line: None, message: e.to_string() }])
}

/// What [`admit`] would do, without writing: the allocations to remember,
/// or every refusal (for `offerlab validate --data`).
pub async fn allocations_to_record(
    store: &dyn Store,
    catalog: &Catalog,
) -> Result<Vec<(ExperimentId, AllocationRecord)>, ValidationErrors> {
    let storage = storage_error;
    let mut records = Vec::new();
    let mut refusals = Vec::new();
    for exp in catalog.experiments() {
        let stored = store.allocation(&exp.id).await.map_err(storage)?;
        let has = store.has_exposures(&exp.id, exp.allocation_version).await.map_err(storage)?;
        match check(stored.as_ref(), exp, has) {
            Check::Unchanged => {}
            Check::Record(r) => records.push((exp.id.clone(), r)),
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

/// What the service would refuse on the sled store in `data`, the service
/// stopped (`offerlab validate --data`): allocation changes of tests that
/// already recorded exposures. Writes nothing.
pub async fn refusals_on_folder(data: &std::path::Path, catalog: &Catalog) -> Result<(), ValidationErrors> {
    let one = |message: String| {
        ValidationErrors(vec![ValidationError { file: data.display().to_string(), line: None, message }])
    };
    if !data.join("db").exists() {
        return Err(one("no offerlab data here; pass the folder the service uses (--data of `offerlab serve`)".into()));
    }
    let store = crate::store::SledStore::open(data).await.map_err(|e| match e {
        StoreError::Locked(_) => one(
            "a running offerlab holds this folder; stop it to validate against its data, or use POST /admin/reload, which refuses the same changes and keeps the running set"
                .into(),
        ),
        other => one(other.to_string()),
    })?;
    refusals(&store, catalog).await
}

/// [`refusals_on_folder`] for a PostgreSQL store (`offerlab validate
/// --store`); its replicas may keep running.
pub async fn refusals_on_postgres(url: &str, catalog: &Catalog) -> Result<(), ValidationErrors> {
    let one = |message: String| ValidationErrors(vec![ValidationError { file: "--store".into(), line: None, message }]);
    let store = crate::store::PgStore::open(url).await.map_err(|e| one(e.to_string()))?;
    refusals(&store, catalog).await
}

/// What admission would refuse on `store`, which is closed after.
async fn refusals(store: &dyn Store, catalog: &Catalog) -> Result<(), ValidationErrors> {
    let checked = allocations_to_record(store, catalog).await.map(|_| ());
    let _ = store.close().await;
    checked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::load_dir;

    fn cart() -> std::sync::Arc<Experiment> {
        let catalog = load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"))).unwrap();
        catalog.get("cart-protection-copy").unwrap().clone()
    }

    /// The stored encoding is pinned: a refactor that changed it would
    /// refuse every running test with exposures.
    #[test]
    fn the_fingerprint_has_a_defined_encoding() {
        assert_eq!(
            cart().allocation_fingerprint(),
            r#"v2:{"seed":"cart-protection-copy","hash_attribute":"visitor_id","coverage":1.0,"namespace":null,"variants":[["control",0.5],["benefit",0.5]],"targeting":{}}"#
        );
    }

    #[test]
    fn a_record_of_the_legacy_encoding_is_upgraded_when_the_allocation_is_the_same() {
        let exp = cart();
        let legacy =
            AllocationRecord { fingerprint: exp.legacy_allocation_fingerprint(), ..AllocationRecord::of(&exp) };
        assert_eq!(check(Some(&legacy), &exp, true), Check::Record(AllocationRecord::of(&exp)));
        let mut moved = (*exp).clone();
        moved.seed = "another".into();
        assert!(matches!(check(Some(&legacy), &moved, true), Check::Refuse(_)), "a real change is still refused");
    }
}
