//! One notification on its way to one webhook, as the store keeps it, and
//! the rules for another try: what an answer means, and when.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::ExperimentId;

/// Longest a delivery is retried: after this, it is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The first retry's delay; each later one doubles, up to [`LONGEST_WAIT`].
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
pub const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// A verdict change for one webhook, until it is delivered or given up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The same on every try (`X-Offerlab-Delivery`), so a receiver can
    /// drop repeats.
    pub id: String,
    pub webhook: String,
    pub experiment: ExperimentId,
    /// The test's name when its verdict changed.
    pub name: String,
    pub code: String,
    pub sentence: String,
    pub winner: Option<String>,
    pub previous_code: Option<String>,
    /// The report's day.
    pub as_of: NaiveDate,
    pub created_at: DateTime<Utc>,
    /// Tries so far.
    pub attempts: u32,
    /// When it may be tried next.
    pub next_at: DateTime<Utc>,
    /// What the last try got (an HTTP status, a network error).
    pub last: Option<String>,
}

impl Delivery {
    /// The message `offerlab notify test` sends: a real delivery's shape,
    /// about the first test the webhook follows, saying it is a test.
    pub fn sample(
        hook: &crate::experiment::Webhook,
        catalog: &crate::experiment::Catalog,
        now: DateTime<Utc>,
    ) -> Delivery {
        let exp = catalog.experiments().find(|e| hook.experiments.as_ref().is_none_or(|ids| ids.contains(&e.id)));
        Delivery {
            id: format!("test-{:028x}", rand::random::<u128>() >> 16),
            webhook: hook.name.clone(),
            experiment: exp.map_or_else(|| "sample-test".parse().expect("a valid id"), |e| e.id.clone()),
            name: exp.map_or_else(|| "Sample test".to_owned(), |e| e.name.clone()),
            code: hook.on.first().map_or("validated_winner", |c| c.as_str()).to_owned(),
            sentence: "A test message from offerlab: this webhook is wired up. Real messages look like this one."
                .into(),
            winner: None,
            previous_code: None,
            as_of: now.date_naive(),
            created_at: now,
            attempts: 0,
            next_at: now,
            last: None,
        }
    }
}

/// How a webhook's last delivery ended, for the report page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDelivery {
    pub webhook: String,
    pub delivery_id: String,
    pub experiment: ExperimentId,
    pub code: String,
    pub at: DateTime<Utc>,
    pub attempts: u32,
    pub delivered: bool,
    /// The status or error of the last try.
    pub outcome: String,
}

/// What the store does with a delivery after a try.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterTry {
    /// Keep it for another try (attempts, next try and outcome updated).
    Again(Delivery),
    /// Remove it, and record how it ended for its webhook.
    Done(LastDelivery),
}

/// What one try's answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Tried {
    /// 2xx: done.
    Delivered(u16),
    /// A network error, 429 or 5xx: try again, no sooner than `after`
    /// (the receiver's `Retry-After`) when it said.
    Again { outcome: String, after: Option<Duration> },
    /// Any other answer (a 4xx other than 429): trying again would get it
    /// again.
    Refused(u16),
}

impl Tried {
    /// The meaning of an HTTP answer with `status` and `Retry-After` header.
    pub fn answer(status: u16, retry_after: Option<&str>) -> Tried {
        match status {
            200..=299 => Tried::Delivered(status),
            429 | 500..=599 => Tried::Again {
                outcome: status.to_string(),
                after: retry_after.and_then(|s| s.trim().parse::<u64>().ok()).map(Duration::from_secs),
            },
            _ => Tried::Refused(status),
        }
    }

    /// What the receiver said, in a few words.
    pub fn said(&self) -> String {
        match self {
            Tried::Delivered(status) | Tried::Refused(status) => format!("HTTP {status}"),
            Tried::Again { outcome, .. } => outcome.clone(),
        }
    }

    /// A try that got no answer.
    pub fn network(error: &str) -> Tried {
        Tried::Again { outcome: error.to_owned(), after: None }
    }
}

/// When to try a delivery again after its `attempts`-th try at `now`:
/// exponential backoff with jitter (`FIRST_WAIT · 2^(attempts − 1)`, at most
/// [`LONGEST_WAIT`], times a factor in [0.5, 1) so that receivers coming
/// back are not hit by every sender at once), no sooner than the
/// receiver's `Retry-After`. `None` once that is past [`GIVE_UP_AFTER`] from
/// the delivery's creation.
pub fn next_try(
    created_at: DateTime<Utc>,
    attempts: u32,
    after: Option<Duration>,
    now: DateTime<Utc>,
    jitter: f64,
) -> Option<DateTime<Utc>> {
    let doubled = FIRST_WAIT.saturating_mul(1 << attempts.saturating_sub(1).min(20)).min(LONGEST_WAIT);
    let wait = doubled.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)).max(after.unwrap_or_default());
    let at = now + chrono::Duration::from_std(wait).ok()?;
    (at <= created_at + chrono::Duration::from_std(GIVE_UP_AFTER).ok()?).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_mean_done_again_or_refused() {
        assert_eq!(Tried::answer(204, None), Tried::Delivered(204));
        assert_eq!(Tried::answer(500, None), Tried::Again { outcome: "500".into(), after: None });
        assert_eq!(
            Tried::answer(429, Some(" 30 ")),
            Tried::Again { outcome: "429".into(), after: Some(Duration::from_secs(30)) }
        );
        assert_eq!(Tried::answer(400, None), Tried::Refused(400));
        assert_eq!(Tried::answer(404, Some("5")), Tried::Refused(404));
    }

    #[test]
    fn waits_double_with_jitter_honour_retry_after_and_end_after_a_day() {
        let t0: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let wait =
            |attempts, after, jitter| next_try(t0, attempts, after, t0, jitter).map(|t| (t - t0).num_milliseconds());
        assert_eq!(wait(1, None, 0.0), Some(500));
        assert_eq!(wait(1, None, 1.0), Some(1000));
        assert_eq!(wait(3, None, 1.0), Some(4000));
        assert_eq!(wait(40, None, 1.0), Some(3_600_000), "at most an hour");
        assert_eq!(wait(1, Some(Duration::from_secs(30)), 0.0), Some(30_000));
        let late = t0 + chrono::Duration::hours(23) + chrono::Duration::minutes(59);
        assert_eq!(next_try(t0, 12, None, late, 1.0), None, "past a day it is given up");
    }
}
