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
        for b in &running[i + 1..] {
            if a.surface != b.surface || a.targeting.disjoint_from(&b.targeting) {
                continue;
            }
            let apart = matches!((&a.namespace, &b.namespace), (Some(x), Some(y)) if !x.may_overlap(y));
            if !apart {
                errors.push(ValidationError {
                    file: b.source.clone(),
                    line: b.surface_line,
                    message: format!(
                        "running tests \"{}\" and \"{}\" both run on surface \"{}\" and could show one visitor both; pause one, or put both in one namespace with disjoint ranges, e.g. namespace = {{ id = \"{}\", range = [0.0, 0.5] }} and [0.5, 1.0]",
                        a.id, b.id, a.surface.as_str(), a.surface.as_str()
                    ),
                });
            }
        }
    }
    errors
}
