//! `metrics.toml`: the shop's currency, then one table per metric, parsed
//! into [`Metric`]s, with the caps and CUPED covariates they may carry.

use std::collections::BTreeMap;

use super::errors::{FileErrors, ValidationError};
use super::metric::{Cap, Cuped, Metric, MetricKind, Source};
use super::raw::{RawCap, RawCuped, RawMetricKind, RawMetrics};
use crate::currency::Currency;
use crate::ids::{EventName, MetricName, MAX_EVENT_NAME_LEN};

/// An event name a metric reads, which must be one the API accepts.
fn event_name(event: &str) -> Result<EventName, String> {
    EventName::parse(event).map_err(|_| {
        format!(
            "event name \"{}\" must be 1 to {MAX_EVENT_NAME_LEN} bytes without control characters, as the events API accepts",
            event.escape_debug()
        )
    })
}

/// Parses `metrics.toml`: one table per metric, keyed by its name.
pub fn parse_metrics(file: &str, text: &str) -> Result<BTreeMap<MetricName, Metric>, Vec<ValidationError>> {
    match parse_metrics_partly(file, text) {
        (metrics, errors) if errors.is_empty() => Ok(metrics),
        (_, errors) => Err(errors),
    }
}

/// The metrics that parse, and the errors of the rest.
pub(super) fn parse_metrics_partly(file: &str, text: &str) -> (BTreeMap<MetricName, Metric>, Vec<ValidationError>) {
    let mut errs = FileErrors::new(file, text);
    let raw: RawMetrics = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            errs.toml(e);
            return (BTreeMap::new(), errs.errors);
        }
    };
    let currency = raw.currency.and_then(|code| {
        let span = code.span();
        Currency::parse(code.get_ref()).map_err(|e| errs.at(span, format!("{e}; or remove the currency line"))).ok()
    });
    let mut metrics = BTreeMap::new();
    for (name, spanned) in raw.metrics {
        let span = spanned.span();
        let m = spanned.into_inner();
        let metric_name = match MetricName::parse(&name) {
            Ok(n) => Some(n),
            Err(e) => {
                errs.at(span.clone(), format!("{e}; rename the metric's table, e.g. [revenue_per_visitor]"));
                None
            }
        };
        // Every event name is checked, so one pass names every bad one.
        let mut event = |raw: &str| match event_name(raw) {
            Ok(e) => Some(e),
            Err(e) => {
                errs.at(span.clone(), format!("metric \"{}\": {e}", name.escape_debug()));
                None
            }
        };
        let single = m.event.as_deref().filter(|e| !e.is_empty()).map(&mut event);
        let numerator = m.numerator.map(|s| (event(&s.event), s.aggregate));
        let denominator = m.denominator.map(|s| (event(&s.event), s.aggregate));
        let kind = match m.kind {
            RawMetricKind::Proportion | RawMetricKind::Mean => {
                if numerator.is_some() || denominator.is_some() {
                    errs.at(span.clone(), format!("metric \"{name}\" is not a ratio; remove numerator and denominator, or set kind = \"ratio\""));
                }
                let Some(event) = single else {
                    errs.at(span, format!("metric \"{name}\" needs the event it counts; add event = \"...\""));
                    continue;
                };
                let Some(event) = event else { continue };
                if matches!(m.kind, RawMetricKind::Proportion) {
                    MetricKind::Proportion { event }
                } else {
                    MetricKind::Mean { event }
                }
            }
            RawMetricKind::Ratio => {
                if m.event.is_some() {
                    errs.at(
                        span.clone(),
                        format!("ratio metric \"{name}\" takes numerator and denominator, not event; remove event"),
                    );
                }
                match (numerator, denominator) {
                    (Some((Some(n), na)), Some((Some(d), da))) => MetricKind::Ratio {
                        numerator: Source { event: n, aggregate: na },
                        denominator: Source { event: d, aggregate: da },
                    },
                    (Some(_), Some(_)) => continue,
                    _ => {
                        errs.at(span, format!("ratio metric \"{name}\" needs numerator = {{ event = \"...\", aggregate = \"sum\" }} and a denominator of the same form"));
                        continue;
                    }
                }
            }
        };
        let cap = m.cap.and_then(|raw| match parse_cap(&name, &kind, raw) {
            Ok(cap) => Some(cap),
            Err(e) => {
                errs.at(span.clone(), e);
                None
            }
        });
        let cuped = m.cuped.and_then(|raw| match parse_cuped(&name, &kind, raw) {
            Ok(cuped) => Some(cuped),
            Err(e) => {
                errs.at(span.clone(), e);
                None
            }
        });
        let Some(metric_name) = metric_name else { continue };
        metrics.insert(
            metric_name.clone(),
            Metric {
                label: m.label.unwrap_or_else(|| name.replace('_', " ")),
                description: m.description.unwrap_or_default(),
                name: metric_name,
                kind,
                higher_is_better: m.higher_is_better.unwrap_or(true),
                cap,
                cuped,
                currency,
            },
        );
    }
    (metrics, errs.errors)
}

/// The longest CUPED pre-period: a visitor's events further back than this
/// are kept but never read as a covariate.
pub const MAX_CUPED_DAYS: u32 = 90;

fn parse_cap(name: &str, kind: &MetricKind, raw: RawCap) -> Result<Cap, String> {
    if matches!(kind, MetricKind::Proportion { .. }) {
        return Err(format!(
            "metric \"{name}\" is a proportion: its values are 0 or 1 and cannot be capped; remove cap"
        ));
    }
    let example = "write cap = { absolute = 500.0 } or cap = { percentile = 0.99 }";
    match (raw.absolute, raw.percentile) {
        (Some(_), Some(_)) => Err(format!("metric \"{name}\": cap takes absolute or percentile, not both; {example}")),
        (None, None) => Err(format!("metric \"{name}\": cap needs absolute or percentile; {example}")),
        (Some(a), None) => {
            if raw.ignore_zeros.is_some() {
                Err(format!("metric \"{name}\": ignore_zeros applies to a percentile cap only; remove it"))
            } else if !(a.is_finite() && a > 0.0) {
                Err(format!("metric \"{name}\": an absolute cap must be a positive number, e.g. 500.0 (got {a})"))
            } else {
                Ok(Cap::Absolute(a))
            }
        }
        (None, Some(p)) => {
            if p > 0.0 && p < 1.0 {
                Ok(Cap::Percentile { percentile: p, ignore_zeros: raw.ignore_zeros.unwrap_or(false) })
            } else {
                Err(format!(
                    "metric \"{name}\": a percentile cap is a fraction between 0 and 1, e.g. 0.99 for the 99th percentile (got {p})"
                ))
            }
        }
    }
}

fn parse_cuped(name: &str, kind: &MetricKind, raw: RawCuped) -> Result<Cuped, String> {
    if matches!(kind, MetricKind::Ratio { .. }) {
        return Err(format!(
            "metric \"{name}\" is a ratio: CUPED adjusts proportion and mean metrics only; remove cuped"
        ));
    }
    if raw.days == 0 || raw.days > MAX_CUPED_DAYS {
        return Err(format!(
            "metric \"{name}\": cuped days is the pre-period before first exposure, 1 to {MAX_CUPED_DAYS} (got {}); e.g. cuped = {{ days = 14 }}",
            raw.days
        ));
    }
    Ok(Cuped { days: raw.days })
}
