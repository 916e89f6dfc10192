//! Tests that could show one visitor two treatments of one surface: two
//! running tests there must be kept apart by a namespace or by targeting.

use super::errors::ValidationError;
use super::{Experiment, Status};

/// Refuses two running tests on the same surface that could both hold one
/// visitor: test one element at a time. They are kept apart only by the same
/// namespace with disjoint ranges, or by targeting no visitor can match twice.
pub(super) fn check_conflicts(experiments: &[Experiment]) -> Vec<ValidationError> {
    let running: Vec<&Experiment> = experiments.iter().filter(|e| e.status == Status::Running).collect();
    let mut errors = Vec::new();
    for (i, a) in running.iter().enumerate() {
        for b in running[i + 1..].iter().filter(|b| could_share_a_visitor(a, b)) {
            errors.push(ValidationError {
                file: b.source.clone(),
                line: b.surface_line,
                message: format!(
                    "running tests \"{}\" and \"{}\" both run on surface \"{}\" and could show one visitor both; {}",
                    a.id,
                    b.id,
                    a.surface.as_str(),
                    keep_apart(a)
                ),
            });
        }
    }
    errors
}

/// Whether two tests, both running, could show one visitor both: the same
/// surface, targeting some visitor could match twice, and no shared
/// namespace with disjoint ranges.
pub(super) fn could_share_a_visitor(a: &Experiment, b: &Experiment) -> bool {
    let apart = matches!((&a.namespace, &b.namespace), (Some(x), Some(y)) if !x.may_overlap(y));
    a.surface == b.surface && !a.targeting.disjoint_from(&b.targeting) && !apart
}

/// How to keep another test apart from `running`, which already shows its
/// variants: a namespace changes who it shows, so it needs a new phase.
pub(super) fn keep_apart(running: &Experiment) -> String {
    format!(
        "pause one, or put both in one namespace with disjoint ranges, e.g. namespace = {{ id = \"{s}\", range = [0.0, 0.5] }} and [0.5, 1.0], and raise allocation_version of \"{id}\" (a namespace changes who it shows, so its analysis starts a new phase; without that the change is refused)",
        s = running.surface.as_str(),
        id = running.id
    )
}
