//! Metric definitions (`experiments/metrics.toml`) and how a visitor's
//! events become the per-visitor values a metric averages.
//!
//! All metrics are per exposed visitor and count only events at or after
//! the visitor's first exposure:
//! - proportion: 1 if the visitor has at least one `event`, else 0;
//! - mean: the sum of the `event`'s values (0 without one);
//! - ratio: sum over visitors of a numerator over the sum of a denominator,
//!   each a count or a value sum of an event (the delta method gives its
//!   variance).

use serde::{Deserialize, Serialize};

use crate::ids::{EventName, MetricName};

/// How a ratio's side reduces a visitor's events to one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// How many events the visitor had.
    Count,
    /// The sum of their values.
    Sum,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub event: EventName,
    pub aggregate: Aggregate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricKind {
    Proportion { event: EventName },
    Mean { event: EventName },
    Ratio { numerator: Source, denominator: Source },
}

/// What a metric averages, without its sources: how its values read (a
/// share of visitors, an amount per visitor, one sum over another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Proportion,
    Mean,
    Ratio,
}

/// How one of a metric's numbers reads on screen (the wire names it
/// `wire::v1::Unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A share, shown as a percent: a conversion rate, a return rate.
    Share,
    /// Money, shown with grouping and the shop's currency: an event's
    /// values are order or offer amounts.
    Amount,
    /// A whole count, with grouping.
    Count,
    /// Anything else: two decimals.
    Number,
}

/// The units of a metric's value, of its total (a proportion's
/// conversions, a mean's or a ratio numerator's sum) and of a ratio's
/// denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    pub value: Unit,
    pub total: Unit,
    pub denominator: Option<Unit>,
}

impl Aggregate {
    /// A count of events, or the sum of their amounts.
    fn unit(self) -> Unit {
        match self {
            Aggregate::Count => Unit::Count,
            Aggregate::Sum => Unit::Amount,
        }
    }
}

impl MetricKind {
    /// Event values are amounts (order values, offer prices), so a sum of
    /// them is money and so is a sum over a count (an order value); a
    /// count over a count (returns per order) or an amount over an amount
    /// (refunded share of revenue) is a share.
    pub fn units(&self) -> Units {
        match self {
            MetricKind::Proportion { .. } => Units { value: Unit::Share, total: Unit::Count, denominator: None },
            MetricKind::Mean { .. } => Units { value: Unit::Amount, total: Unit::Amount, denominator: None },
            MetricKind::Ratio { numerator, denominator } => {
                let (n, d) = (numerator.aggregate.unit(), denominator.aggregate.unit());
                let value = match (n, d) {
                    (Unit::Amount, Unit::Count) => Unit::Amount,
                    (a, b) if a == b => Unit::Share,
                    _ => Unit::Number,
                };
                Units { value, total: n, denominator: Some(d) }
            }
        }
    }

    pub fn shape(&self) -> Shape {
        match self {
            MetricKind::Proportion { .. } => Shape::Proportion,
            MetricKind::Mean { .. } => Shape::Mean,
            MetricKind::Ratio { .. } => Shape::Ratio,
        }
    }
}

/// Winsorising: each visitor's value (a ratio's numerator) enters the
/// sums as `min(x, cap)`, so one wholesale order cannot flip a test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    /// A fixed cap, in the metric's unit.
    Absolute(f64),
    /// The `percentile` (in (0, 1)) of the visitors' values in the test's
    /// current phase, all variants together, interpolated linearly between
    /// order statistics (SQL's `PERCENTILE_CONT`); with `ignore_zeros`,
    /// of the non-zero values only.
    Percentile { percentile: f64, ignore_zeros: bool },
}

/// CUPED: the visitor's value of the same metric in the `days` before
/// their first exposure is the covariate the lift is adjusted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cuped {
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub name: MetricName,
    pub label: String,
    pub description: String,
    #[serde(flatten)]
    pub kind: MetricKind,
    /// False for metrics where a rise is harm (return rate).
    pub higher_is_better: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuped: Option<Cuped>,
    /// The shop's currency (`metrics.toml`'s `currency`), which its
    /// amounts are shown in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<crate::currency::Currency>,
}

/// A visitor's running tally of one event: how many and their value sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EventTally {
    pub count: u64,
    pub sum: f64,
}

impl Source {
    fn reduce(&self, tally: &dyn Fn(&EventName) -> EventTally) -> f64 {
        let t = tally(&self.event);
        match self.aggregate {
            Aggregate::Count => t.count as f64,
            Aggregate::Sum => t.sum,
        }
    }
}

impl Metric {
    /// Whether this metric is a proportion (its per-visitor value is 0 or 1).
    pub fn is_proportion(&self) -> bool {
        matches!(self.kind, MetricKind::Proportion { .. })
    }

    /// The event names this metric reads.
    pub fn events(&self) -> Vec<&EventName> {
        match &self.kind {
            MetricKind::Proportion { event } | MetricKind::Mean { event } => vec![event],
            MetricKind::Ratio { numerator, denominator } => vec![&numerator.event, &denominator.event],
        }
    }

    pub fn is_ratio(&self) -> bool {
        matches!(self.kind, MetricKind::Ratio { .. })
    }

    /// The one event a proportion or mean reads (`None` for a ratio): the
    /// event whose pre-exposure tally is a CUPED covariate.
    pub fn single_event(&self) -> Option<&EventName> {
        match &self.kind {
            MetricKind::Proportion { event } | MetricKind::Mean { event } => Some(event),
            MetricKind::Ratio { .. } => None,
        }
    }

    /// The covariate a visitor's pre-exposure tally of [`Metric::single_event`]
    /// gives: what `x` would be for that tally.
    pub fn covariate(&self, pre: EventTally) -> f64 {
        self.visitor_value(&|_| pre).0
    }

    /// The visitor's value for this metric: `(x, y)` where `y` is the
    /// denominator for a ratio and 0 otherwise (unused). `tally` gives the visitor's
    /// attributed count and sum of an event.
    pub fn visitor_value(&self, tally: &dyn Fn(&EventName) -> EventTally) -> (f64, f64) {
        match &self.kind {
            MetricKind::Proportion { event } => (if tally(event).count > 0 { 1.0 } else { 0.0 }, 0.0),
            MetricKind::Mean { event } => (tally(event).sum, 0.0),
            MetricKind::Ratio { numerator, denominator } => (numerator.reduce(tally), denominator.reduce(tally)),
        }
    }
}
