//! Allocation safety. Changing who sees which variant (seed, variants,
//! weights, coverage, namespace, targeting, hash attribute) in a test that
//! already recorded exposures would silently move visitors between arms and
//! corrupt its result. Such a change is refused unless the definition
//! raises `allocation_version`, which starts a new analysis phase: earlier
//! exposures are kept but left out of the new phase's report. A new
//! `timezone` is refused the same way: stored days are calendar days in the
//! offset they were written with. (`start` may change freely: stored days
//! are dates, not offsets from it.)

use serde::{Deserialize, Serialize};

use crate::experiment::Experiment;

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
    if now.version == before.version && exposures_in_phase {
        if now.fingerprint != before.fingerprint {
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
