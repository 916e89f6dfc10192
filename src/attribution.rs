//! Attribution: which of a visitor's events count for a test, and what the
//! visitor then contributes to each metric.
//!
//! An event counts for a test when the visitor's first exposure to it is at
//! or before the event's time, whatever order the calls arrived in. Pure:
//! the incremental path and `offerlab rebuild` both use it, so they agree.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::experiment::metric::EventTally;
use crate::experiment::{Catalog, Experiment};
use crate::stats::VisitorValue;

/// A visitor's attributed events for one test: event name → count and sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tallies(pub BTreeMap<String, EventTally>);

impl Tallies {
    /// Tallies of the events at or after `exposed_at`.
    pub fn from_events<'a>(
        exposed_at: DateTime<Utc>,
        events: impl IntoIterator<Item = (&'a str, f64, DateTime<Utc>)>,
    ) -> Self {
        let mut t = Tallies::default();
        for (name, value, ts) in events {
            if ts >= exposed_at {
                t.add(name, value);
            }
        }
        t
    }

    pub fn add(&mut self, name: &str, value: f64) {
        let e = self.0.entry(name.to_owned()).or_default();
        e.count += 1;
        e.sum += value;
    }

    pub fn get(&self, name: &str) -> EventTally {
        self.0.get(name).copied().unwrap_or_default()
    }
}

/// The visitor's value for each metric the test reports, in the order of
/// [`Experiment::all_metrics`].
pub fn metric_values<'e>(exp: &'e Experiment, catalog: &Catalog, tallies: &Tallies) -> Vec<(&'e str, VisitorValue)> {
    exp.all_metrics()
        .into_iter()
        .filter_map(|name| {
            let metric = catalog.metric(name)?;
            let (x, y) = metric.visitor_value(&|event| tallies.get(event));
            Some((name, VisitorValue { x, y, pre: 0.0 }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn only_events_at_or_after_exposure_count() {
        let events = [
            ("order", 50.0, ts("2026-11-02T09:00:00Z")),
            ("order", 70.0, ts("2026-11-02T10:00:00Z")),
            ("order", 20.0, ts("2026-11-03T10:00:00Z")),
        ];
        let t = Tallies::from_events(ts("2026-11-02T10:00:00Z"), events);
        assert_eq!(t.get("order"), EventTally { count: 2, sum: 90.0 });
        assert_eq!(t.get("return"), EventTally::default());
    }
}
