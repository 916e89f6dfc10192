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
//!    and the lift held in the later half of the complete cycles: their lift
//!    is closer to the whole test's lift than to zero, and they are large
//!    enough for that comparison to have the planned power
//!    ([`crate::cycles::hold`]); else `winner_validating`, whose sentence
//!    says which condition is missing and, when the cycles are too small,
//!    how long until they will not be. A treatment significantly better wins; failing
//!    that, one significantly worse makes the control the winner against
//!    it, with any number of arms: a significant loss never reads as "no
//!    difference";
//! 5. without one: `collecting_data` below the sample size or two complete
//!    cycles, else `no_detectable_difference`.

use super::{lead_treatment, Direction, Lift, Persistence, Report, Role};
use crate::experiment::Status;
use crate::format::{days, level, pct, signed_pct, thousands};
use crate::stats::Inference;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub const ALL: [VerdictCode; 7] = [
        VerdictCode::CollectingData,
        VerdictCode::SampleRatioMismatch,
        VerdictCode::NoDetectableDifference,
        VerdictCode::WinnerValidating,
        VerdictCode::ValidatedWinner,
        VerdictCode::GuardrailHarmed,
        VerdictCode::InconsistentAcrossCycles,
    ];

    /// The code `as_str` spells `text`.
    pub fn parse(text: &str) -> Option<VerdictCode> {
        VerdictCode::ALL.into_iter().find(|c| c.as_str() == text)
    }

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

#[derive(Debug, Clone, PartialEq)]
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

/// `weeks` for 7-day cycles, else `business cycles`.
pub fn cycles_word(report: &Report) -> &'static str {
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

/// "the last week" or "the last 2 weeks", and the verb that agrees.
fn later_cycles(report: &Report, p: &Persistence) -> (String, &'static str) {
    let count = p.cycles.1 - p.cycles.0 + 1;
    let word = cycles_word(report);
    if count == 1 {
        (format!("the last {}", &word[..word.len() - 1]), "is")
    } else {
        (format!("the last {count} {word}"), "are")
    }
}

/// The verdict; a concluded test's sentence says so, which variant
/// everyone now gets and since when, and what the numbers were when its
/// exposures stopped, instead of advice to ship or wait.
pub fn decide(report: &Report) -> Verdict {
    let verdict = decide_on_data(report);
    let Some(winner) = report.concluded_winner.as_deref().filter(|_| report.status == Status::Concluded) else {
        return verdict;
    };
    let since = report
        .daily
        .last()
        .map(|d| format!(" since {}", (d.date + chrono::Duration::days(1)).format("%b %-d, %Y")))
        .unwrap_or_default();
    let primary = report.primary();
    let result = match lead_treatment(primary).filter(|l| l.comparison.not_computable.is_none()) {
        Some(l) => format!(
            "when its exposures stopped, {} was {} against {} on {} ({}; {})",
            name(&l.variant),
            signed_pct(l.comparison.relative_lift),
            name(&report.variants[0]),
            primary.label.to_lowercase(),
            interval(report, l),
            verdict.code.label().to_lowercase()
        ),
        None => "it ended before its numbers could be computed".to_owned(),
    };
    Verdict {
        code: verdict.code,
        sentence: format!("Concluded: everyone now gets {}{since}; {result}.", name(winner)),
        winner: Some(winner.to_owned()),
    }
}

fn decide_on_data(report: &Report) -> Verdict {
    let primary = report.primary();
    let metric = primary.label.to_lowercase();

    if report.status == Status::Draft {
        let sentence = match report.blocked_by.first() {
            None => "Draft: not shown to visitors yet; set status = \"running\" to start it.".to_owned(),
            Some((running, how)) => format!(
                "Draft: not shown to visitors yet. Running it now would be refused: \"{running}\" runs on the same surface and could show one visitor both; {how}."
            ),
        };
        return Verdict { code: VerdictCode::CollectingData, sentence, winner: None };
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
    let winner = lead_treatment(primary).and_then(|lead| match lead.direction {
        Direction::Better => Some((lead.variant.clone(), lead)),
        Direction::Worse => Some((report.variants[0].clone(), lead)),
        Direction::Inconclusive => None,
    });

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
        let validating = |sentence: String| Verdict { code: VerdictCode::WinnerValidating, sentence, winner: None };
        if !enough {
            return validating(format!(
                "{effect}, but it has not yet held over two full {} at the planned sample ({}): keep the test running.",
                cycles_word(report),
                progress_phrase(report)
            ));
        }
        let Some(p) = report.persistence.as_ref().filter(|p| p.variant == lead.variant) else {
            return validating(format!(
                "{effect}, but its lift in the later {} cannot be computed yet: keep the test running.",
                cycles_word(report)
            ));
        };
        let (later, is) = later_cycles(report, p);
        if !p.hold.large_enough {
            let when = match report.sample_size.days_left {
                Some(d) if d > 0 && d <= 366 => format!("at this traffic they will be in about {}", days(d)),
                _ => {
                    "at this traffic that takes more than a year: raise the traffic or test a bolder change".to_owned()
                }
            };
            return validating(format!(
                "{effect}; {later} {is} still too small to tell a lasting lift from a novelty effect that faded ({} there); {when}: keep the test running.",
                signed_pct(p.lift),
            ));
        }
        if !p.hold.held {
            return validating(format!(
                "{effect}, but in {later} the lift was {}, closer to no change than to the overall {}: possibly a novelty effect that faded; keep the test running.",
                signed_pct(p.lift),
                signed_pct(p.overall_lift)
            ));
        }
        return Verdict {
            code: VerdictCode::ValidatedWinner,
            sentence: format!(
                "{effect}; it held in {later} ({}): {}.",
                signed_pct(p.lift),
                if treatment_wins { "ship it" } else { "keep the control" }
            ),
            winner: Some(winner),
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
