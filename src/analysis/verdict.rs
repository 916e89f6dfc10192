//! The verdict: one of seven codes and one plain sentence a marketer can
//! act on.
//!
//! Decided in this order, each step overriding the ones after it:
//! 1. `sample_ratio_mismatch`: the traffic split is broken, nothing else is
//!    claimed;
//! 2. `guardrail_harmed`: a treatment significantly hurts a guardrail, so
//!    no win on the primary metric matters. Guardrails are judged with
//!    Holm's correction across every guardrail × treatment pair, and only
//!    once the planned sample is reached (at any look with the sequential
//!    option, whose intervals stay valid under peeking), so the chance that
//!    a harmless treatment is called harmful stays at most alpha;
//! 3. `inconsistent_across_cycles`: the last two complete cycles disagree
//!    significantly (novelty, seasonality, a promotion);
//! 4. with a significant primary result (after Holm correction):
//!    `validated_winner` when the sample is reached, two cycles are complete,
//!    the lift pointed the winning way in each of the last two, and those
//!    two cycles are large enough to have caught the lift vanishing (a
//!    novelty effect) with the planned power; else `winner_validating`,
//!    whose sentence says which condition is missing. A treatment significantly better wins; failing
//!    that, one significantly worse makes the control the winner against
//!    it, with any number of arms: a significant loss never reads as "no
//!    difference";
//! 5. without one: `collecting_data` below the sample size or two complete
//!    cycles, else `no_detectable_difference`.

use serde::Serialize;

use super::{Direction, Lift, Report, Role};
use crate::experiment::Status;
use crate::format::{days, level, pct, signed_pct, thousands};
use crate::stats::Inference;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictCode {
    CollectingData,
    SampleRatioMismatch,
    NoDetectableDifference,
    WinnerValidating,
    ValidatedWinner,
    GuardrailHarmed,
    InconsistentAcrossCycles,
}

impl VerdictCode {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictCode::CollectingData => "collecting_data",
            VerdictCode::SampleRatioMismatch => "sample_ratio_mismatch",
            VerdictCode::NoDetectableDifference => "no_detectable_difference",
            VerdictCode::WinnerValidating => "winner_validating",
            VerdictCode::ValidatedWinner => "validated_winner",
            VerdictCode::GuardrailHarmed => "guardrail_harmed",
            VerdictCode::InconsistentAcrossCycles => "inconsistent_across_cycles",
        }
    }

    /// A short label for badges.
    pub fn label(self) -> &'static str {
        match self {
            VerdictCode::CollectingData => "Collecting data",
            VerdictCode::SampleRatioMismatch => "Sample ratio mismatch",
            VerdictCode::NoDetectableDifference => "No detectable difference",
            VerdictCode::WinnerValidating => "Winner validating",
            VerdictCode::ValidatedWinner => "Validated winner",
            VerdictCode::GuardrailHarmed => "Guardrail harmed",
            VerdictCode::InconsistentAcrossCycles => "Inconsistent across cycles",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub code: VerdictCode,
    pub sentence: String,
    /// The variant to ship, when there is one.
    pub winner: Option<String>,
}

impl Verdict {
    pub(super) fn placeholder() -> Self {
        Verdict { code: VerdictCode::CollectingData, sentence: String::new(), winner: None }
    }
}

fn name(variant: &str) -> String {
    let s = variant.replace(['_', '-'], " ");
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn interval(report: &Report, l: &Lift) -> String {
    format!("{} CI {} to {}", level(report.alpha), pct(l.comparison.ci.0), pct(l.comparison.ci.1))
}

fn cycles_word(report: &Report) -> &'static str {
    if report.cycle_length_days == 7 {
        "weeks"
    } else {
        "business cycles"
    }
}

fn progress_phrase(report: &Report) -> String {
    let s = &report.sample_size;
    let sample = match (s.per_variant, s.progress) {
        (Some(n), Some(p)) => format!("{} of the {} visitors per variant needed", pct(p.min(1.0)), thousands(n)),
        _ => "the sample size is not known yet".to_owned(),
    };
    let left = match s.days_left {
        Some(d) if d > 0 => format!(", about {} left", days(d)),
        _ => String::new(),
    };
    format!("{sample}, {} of 2 full {} complete{left}", report.cycles_completed.min(2), cycles_word(report))
}

/// The lift with the smallest p-value the verdict uses among those going
/// `direction`.
fn strongest(lifts: &[Lift], direction: Direction) -> Option<&Lift> {
    let p = |l: &Lift| l.p_value_adjusted.unwrap_or(l.comparison.p_value);
    lifts.iter().filter(|l| l.direction == direction).min_by(|a, b| p(a).total_cmp(&p(b)))
}

/// Whether the lead treatment's lift pointed the winning way in each of the
/// last two complete cycles.
fn held_in_last_two_cycles(report: &Report, variant: &str, want_positive: bool) -> bool {
    let complete: Vec<_> = report.cycles.iter().filter(|c| c.cycle.complete).collect();
    let [.., a, b] = complete.as_slice() else {
        return false;
    };
    [a, b].iter().all(|c| {
        c.lifts.iter().any(|l| {
            l.variant == variant
                && l.comparison.not_computable.is_none()
                && (l.comparison.relative_lift > 0.0) == want_positive
        })
    })
}

pub fn decide(report: &Report) -> Verdict {
    let primary = report.primary();
    let metric = primary.label.to_lowercase();

    if report.status == Status::Draft {
        return Verdict {
            code: VerdictCode::CollectingData,
            sentence: "Draft: not shown to visitors yet; set status = \"running\" to start it.".to_owned(),
            winner: None,
        };
    }

    if report.srm.mismatch {
        let shares: Vec<String> = report.srm.observed_shares.iter().map(|s| pct(*s)).collect();
        let expected: Vec<String> = report.srm.expected_shares.iter().map(|s| pct(*s)).collect();
        return Verdict {
            code: VerdictCode::SampleRatioMismatch,
            sentence: format!(
                "Traffic split {} does not match the configured {} (p = {:.1e}): assignment or tracking is broken, so no result can be trusted; fix the cause and restart the test.",
                shares.join(" / "),
                expected.join(" / "),
                report.srm.p_value
            ),
            winner: None,
        };
    }

    let guardrails_judged = report.sample_size.reached || matches!(report.inference, Inference::Sequential { .. });
    let harmed = report
        .metrics
        .iter()
        .filter(|m| guardrails_judged && m.role == Role::Guardrail)
        .find_map(|m| m.lifts.iter().find(|l| l.direction == Direction::Worse).map(|l| (m, l)));
    if let Some((m, l)) = harmed {
        return Verdict {
            code: VerdictCode::GuardrailHarmed,
            sentence: format!(
                "{} harms {}: {} ({}): do not ship it, whatever it does to {metric}.",
                name(&l.variant),
                m.label.to_lowercase(),
                signed_pct(l.comparison.relative_lift),
                interval(report, l)
            ),
            winner: None,
        };
    }

    let enough = report.sample_size.reached && report.cycles_completed >= 2;
    let winner = match (strongest(&primary.lifts, Direction::Better), strongest(&primary.lifts, Direction::Worse)) {
        (Some(better), _) => Some((better.variant.clone(), better)),
        (None, Some(worse)) => Some((report.variants[0].clone(), worse)),
        (None, None) => None,
    };

    if let Some(c) = report.consistency.as_ref().filter(|c| !c.consistent) {
        if winner.is_some() || enough {
            return Verdict {
                code: VerdictCode::InconsistentAcrossCycles,
                sentence: format!(
                    "{}'s effect on {metric} changed between the last two {}: {} then {} (p = {:.3}); likely novelty, seasonality or a promotion, so keep the test running before deciding.",
                    name(&c.variant),
                    cycles_word(report),
                    signed_pct(c.lifts.0),
                    signed_pct(c.lifts.1),
                    c.p_value
                ),
                winner: None,
            };
        }
    }

    if let Some((winner, lead)) = winner {
        let treatment_wins = winner == lead.variant;
        let held = held_in_last_two_cycles(report, &lead.variant, treatment_wins == primary.higher_is_better);
        let effect = if treatment_wins {
            format!(
                "{} {} {metric} by {} ({})",
                name(&winner),
                if lead.comparison.relative_lift > 0.0 { "raises" } else { "lowers" },
                pct(lead.comparison.relative_lift.abs()),
                interval(report, lead)
            )
        } else {
            let others: Vec<String> =
                primary.lifts.iter().filter(|l| l.variant != lead.variant).map(|l| name(&l.variant)).collect();
            let worse_too =
                primary.lifts.iter().filter(|l| l.variant != lead.variant && l.direction == Direction::Worse).count();
            let rest = match (others.len(), worse_too) {
                (0, _) => String::new(),
                (n, w) if w == n => {
                    format!("; {} {} worse too", others.join(" and "), if n == 1 { "is" } else { "are" })
                }
                _ => format!("; no arm beats the control (no significant difference yet for {})", others.join(", ")),
            };
            format!(
                "{} hurts {metric}: {} against {} ({}){rest}",
                name(&lead.variant),
                signed_pct(lead.comparison.relative_lift),
                name(&winner),
                interval(report, lead)
            )
        };
        let comparable = report.consistency.as_ref().is_some_and(|c| c.comparable);
        if enough && held && !comparable {
            let change = report.consistency.as_ref().map_or(String::new(), |c| {
                format!(" (only a change of more than {} between them would show)", pct(c.detectable_change))
            });
            return Verdict {
                code: VerdictCode::WinnerValidating,
                sentence: format!(
                    "{effect}; it held in both of the last two {}, but they are too small to tell a lasting lift from a novelty effect{change}: keep the test running.",
                    cycles_word(report)
                ),
                winner: None,
            };
        }
        if enough && !held {
            return Verdict {
                code: VerdictCode::WinnerValidating,
                sentence: format!(
                    "{effect}, but the lift did not point the same way in both of the last two {}: keep the test running until it holds.",
                    cycles_word(report)
                ),
                winner: None,
            };
        }
        return if enough && held {
            Verdict {
                code: VerdictCode::ValidatedWinner,
                sentence: format!(
                    "{effect}; it held in both of the last two {}: {}.",
                    cycles_word(report),
                    if treatment_wins { "ship it" } else { "keep the control" }
                ),
                winner: Some(winner),
            }
        } else {
            Verdict {
                code: VerdictCode::WinnerValidating,
                sentence: format!(
                    "{effect}, but it has not yet held over two full {} at the planned sample ({}): keep the test running.",
                    cycles_word(report),
                    progress_phrase(report)
                ),
                winner: None,
            }
        };
    }

    if !enough {
        return Verdict {
            code: VerdictCode::CollectingData,
            sentence: format!("Still collecting data: {}; no decision yet.", progress_phrase(report)),
            winner: None,
        };
    }
    let detail = primary
        .lifts
        .first()
        .filter(|l| l.comparison.not_computable.is_none())
        .map(|l| {
            format!(" ({} for {}, {})", signed_pct(l.comparison.relative_lift), name(&l.variant), interval(report, l))
        })
        .unwrap_or_default();
    Verdict {
        code: VerdictCode::NoDetectableDifference,
        sentence: format!(
            "No detectable difference in {metric} after {} visitors per variant{detail}: keep the control, or test a bolder change.",
            thousands(report.sample_size.smallest_variant_visitors)
        ),
        winner: None,
    }
}
