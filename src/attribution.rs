//! Attribution: which of a visitor's events count for a test, and what the
//! visitor then contributes to each metric.
//!
//! An event counts for a test when the visitor's first exposure to it is at
//! or before the event's time, whatever order the calls arrived in; for a
//! CUPED metric, the events of the days before it are the covariate. Pure:
//! the incremental path and `offerlab rebuild` both use it, so they agree.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::experiment::metric::{EventTally, Metric};
use crate::experiment::{Catalog, Experiment};
use crate::ids::{EventName, MetricName, VariantIndex};
use crate::stats::VisitorValue;

/// A visitor's attributed events for one test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tallies {
    /// The first exposure the tallies count from, so a pass over a test's
    /// tallies (capping) needs no read of the visitor's exposures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// Event name → count and sum of the events at or after the first
    /// exposure.
    pub post: BTreeMap<EventName, EventTally>,
    /// CUPED metric name → count and sum of its event in the metric's
    /// pre-period, the days before the first exposure.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pre: BTreeMap<MetricName, EventTally>,
}

/// The variant and time of a first exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub variant: VariantIndex,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub at: DateTime<Utc>,
}

impl Tallies {
    /// Tallies of the events at or after `exposed_at`.
    pub fn from_events<'a>(
        exposed_at: DateTime<Utc>,
        events: impl IntoIterator<Item = (&'a EventName, f64, DateTime<Utc>)>,
    ) -> Self {
        let mut t = Tallies::default();
        for (name, value, ts) in events {
            if ts >= exposed_at {
                t.add(name, value);
            }
        }
        t
    }

    pub fn add(&mut self, name: &EventName, value: f64) {
        add_to(&mut self.post, name, value);
    }

    /// Counts an event of `metric`'s pre-period.
    pub fn add_pre(&mut self, metric: &MetricName, value: f64) {
        add_to(&mut self.pre, metric, value);
    }

    pub fn get(&self, name: &str) -> EventTally {
        self.post.get(name).copied().unwrap_or_default()
    }

    /// The pre-period tally of a CUPED metric.
    pub fn pre(&self, metric: &str) -> EventTally {
        self.pre.get(metric).copied().unwrap_or_default()
    }
}

fn add_to<K: Ord + Clone>(map: &mut BTreeMap<K, EventTally>, key: &K, value: f64) {
    let e = map.entry(key.clone()).or_default();
    e.count += 1;
    e.sum += value;
}

/// Whether an event at `at` falls in `metric`'s CUPED pre-period for a
/// visitor first exposed at `exposed_at`: `[exposed_at − days, exposed_at)`.
pub fn in_pre_period(metric: &Metric, exposed_at: DateTime<Utc>, at: DateTime<Utc>) -> bool {
    metric.cuped.is_some_and(|c| at < exposed_at && at >= exposed_at - chrono::Duration::days(i64::from(c.days)))
}

/// The visitor's value for each metric the test reports, in the order of
/// [`Experiment::all_metrics`], beside the metric.
pub fn metric_values<'c>(exp: &Experiment, catalog: &'c Catalog, tallies: &Tallies) -> Vec<(&'c Metric, VisitorValue)> {
    exp.all_metrics()
        .into_iter()
        .filter_map(|name| catalog.metric(name))
        .map(|metric| (metric, metric_value(metric, tallies)))
        .collect()
}

/// The visitor's value for one metric: its `x` and `y` from the tallies
/// after the first exposure, and its CUPED covariate from the pre-period.
pub fn metric_value(metric: &Metric, tallies: &Tallies) -> VisitorValue {
    let (x, y) = metric.visitor_value(&|event| tallies.get(event.as_str()));
    let pre = if metric.cuped.is_some() { metric.covariate(tallies.pre(metric.name.as_str())) } else { 0.0 };
    VisitorValue { x, y, pre }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn event(name: &str) -> EventName {
        EventName::parse(name).unwrap()
    }

    #[test]
    fn only_events_at_or_after_exposure_count() {
        let order = event("order");
        let events = [
            (&order, 50.0, ts("2026-11-02T09:00:00Z")),
            (&order, 70.0, ts("2026-11-02T10:00:00Z")),
            (&order, 20.0, ts("2026-11-03T10:00:00Z")),
        ];
        let t = Tallies::from_events(ts("2026-11-02T10:00:00Z"), events);
        assert_eq!(t.get("order"), EventTally { count: 2, sum: 90.0 });
        assert_eq!(t.get("return"), EventTally::default());
    }

    #[test]
    fn tallies_round_trip_with_their_origin() {
        let mut t = Tallies {
            origin: Some(Origin { variant: VariantIndex::new(1).unwrap(), at: ts("2026-11-02T10:00:00.123456Z") }),
            ..Tallies::default()
        };
        t.add(&event("order"), 20.0);
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(text, r#"{"origin":{"variant":1,"at":1793613600123456},"post":{"order":{"count":1,"sum":20.0}}}"#);
        t.add_pre(&MetricName::parse("revenue_per_visitor").unwrap(), 35.0);
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Tallies>(&text).unwrap(), t);
    }
}
