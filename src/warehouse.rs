//! The warehouse path: the SQL that turns raw `exposures` and `events`
//! tables into the per-day aggregates [`crate::analysis`] reads, with the
//! same attribution as the store's write rules, so a shop can analyse the
//! events it already keeps.
//!
//! For one test and phase, per visitor: the first exposure (the earliest
//! `ts`; later ones never count), then the visitor's events of the names
//! the test's metrics read at or after it, as a count and a value sum per
//! name, then each metric's `(x, y)` (a proportion's `x` is 1 when the
//! count is positive, a mean's the sum, a ratio's its two sides). Grouped
//! by variant, shop-local day of the first exposure and metric:
//! `n = count(*)`, `sum = Σx`, `sum_sq = Σx²`, `den_sum = Σy`,
//! `den_sum_sq = Σy²`, `sum_xy = Σx·y`, and for a CUPED metric its
//! covariate `c` (the same value over the events of the days before the
//! first exposure): `pre_sum = Σc`, `pre_sum_sq = Σc²`, `sum_x_pre = Σx·c`.
//! A capped metric's `x` and `c` are capped first (`least(x, cap)`), at its
//! fixed cap or at the `PERCENTILE_CONT` of its values over all variants,
//! as the service does when it builds a report.
//!
//! Table and column names are configurable ([`Layout`]) and always
//! quoted as identifiers; the test's id, metric and event names come from
//! the validated definitions and are written as quoted literals.

use crate::store::postgres::said;
use std::fmt::Write as _;

use crate::aggregates::AggregateRow;
use crate::capping::{capped_metrics, CapApplied};
use crate::experiment::metric::{Aggregate, Cap, MetricKind};
use crate::experiment::{Catalog, Experiment, ShopZone};
use crate::ids::EventName;
use crate::store::postgres::moments_at;

/// Where the raw records are: offerlab's own PostgreSQL store by default.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Layout {
    /// The exposures table (may be schema-qualified: analytics.exposures).
    #[arg(long, default_value = "exposures")]
    pub exposures_table: String,
    /// The events table.
    #[arg(long, default_value = "events")]
    pub events_table: String,
    /// The visitor id column, in both tables.
    #[arg(long, default_value = "visitor")]
    pub visitor_column: String,
    /// The time column (timestamptz), in both tables.
    #[arg(long, default_value = "ts")]
    pub ts_column: String,
    /// The exposures' test id column.
    #[arg(long, default_value = "experiment")]
    pub experiment_column: String,
    /// The exposures' variant column.
    #[arg(long, default_value = "variant")]
    pub variant_column: String,
    /// The exposures' allocation phase column; "" when the table has none
    /// (every exposure then counts for the test's current phase).
    #[arg(long, default_value = "phase")]
    pub phase_column: String,
    /// The variant column holds variant keys (control, treatment) rather
    /// than offerlab's 0-based indexes.
    #[arg(long = "variant-keys")]
    pub variant_keys: bool,
    /// The events' name column.
    #[arg(long, default_value = "name")]
    pub name_column: String,
    /// The events' value column.
    #[arg(long, default_value = "value")]
    pub value_column: String,
    /// The exposures' segment attributes (a jsonb object, as offerlab's
    /// store keeps them): `--by SEGMENT` reads the segment's attribute
    /// from it.
    #[arg(long, default_value = "attributes")]
    pub attributes_column: String,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            exposures_table: "exposures".into(),
            events_table: "events".into(),
            visitor_column: "visitor".into(),
            ts_column: "ts".into(),
            experiment_column: "experiment".into(),
            variant_column: "variant".into(),
            phase_column: "phase".into(),
            variant_keys: false,
            name_column: "name".into(),
            value_column: "value".into(),
            attributes_column: "attributes".into(),
        }
    }
}

/// `name` as an SQL identifier: each dot-separated part double-quoted,
/// inner quotes doubled.
fn ident(name: &str) -> String {
    name.split('.').map(|part| format!("\"{}\"", part.replace('"', "\"\""))).collect::<Vec<_>>().join(".")
}

/// `s` as an SQL string literal that reads the same whatever the
/// session's `standard_conforming_strings`: a string with a backslash is
/// written as an escape string (`E'...'`, backslashes doubled), which
/// every setting reads alike; with the setting off, a plain `'a\'` would
/// end its literal early.
pub fn literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// The query that produces the test's aggregates (its current phase):
/// columns `variant, date, metric, n` and the sums of
/// [`crate::stats::Moments::SUM_NAMES`], the shape `offerlab analyze` reads,
/// with capped metrics capped.
pub fn aggregates_sql(exp: &Experiment, catalog: &Catalog, layout: &Layout) -> String {
    aggregates_sql_by(exp, catalog, layout, None)
}

/// [`aggregates_sql`], with `by` (a segment's attribute) also a column
/// `segment` after the sums: the raw value the visitor's first exposure
/// kept, NULL without one. Caps are taken over every visitor, as the
/// service takes them, so the segments' sums add up to the whole.
pub fn aggregates_sql_by(exp: &Experiment, catalog: &Catalog, layout: &Layout, by: Option<&str>) -> String {
    let mut sql = capped_values_sql(exp, catalog, layout, by);
    let segment = if by.is_some() { ", segment" } else { "" };
    let variant = if layout.variant_keys {
        "variant::text".to_owned()
    } else {
        let arms: String =
            exp.variants.iter().enumerate().map(|(i, v)| format!(" WHEN {i} THEN {}", literal(&v.key))).collect();
        format!("CASE variant{arms} END")
    };
    let _ = writeln!(
        sql,
        "SELECT {variant} AS variant, date, metric, count(*)::int8 AS n,\n       \
         sum(x)::float8 AS sum, sum(x * x)::float8 AS sum_sq, sum(y)::float8 AS den_sum,\n       \
         sum(y * y)::float8 AS den_sum_sq, sum(x * y)::float8 AS sum_xy,\n       \
         sum(c)::float8 AS pre_sum, sum(c * c)::float8 AS pre_sum_sq, sum(x * c)::float8 AS sum_x_pre{segment}\n\
         FROM capped\nGROUP BY 1, date, metric{segment}\nORDER BY 1, date, metric{segment};"
    );
    sql
}

/// The query that says what each cap did: columns `metric, cap,
/// capped_visitors, visitors`, one row per capped metric with visitors
/// (`cap` is NULL when a percentile had no values to come from).
pub fn caps_sql(exp: &Experiment, catalog: &Catalog, layout: &Layout) -> String {
    let mut sql = capped_values_sql(exp, catalog, layout, None);
    let _ = writeln!(
        sql,
        "SELECT metric, max(cap)::float8 AS cap, (count(*) FILTER (WHERE above))::int8 AS capped_visitors,\n       \
         count(*)::int8 AS visitors\n\
         FROM capped WHERE metric IN ({})\nGROUP BY metric\nORDER BY metric;",
        capped_metrics(exp, catalog)
            .iter()
            .map(|(m, _)| literal(m))
            .chain(["''".to_owned()])
            .collect::<Vec<_>>()
            .join(", ")
    );
    sql
}

/// The common part of both queries: `WITH` the per-visitor values of
/// every metric (`per_metric`), the caps (`caps`) and the capped values
/// (`capped`: `variant, date, metric, x, y, c, cap, above`, and `segment`
/// with `by`).
fn capped_values_sql(exp: &Experiment, catalog: &Catalog, layout: &Layout, by: Option<&str>) -> String {
    let metrics: Vec<_> = exp.all_metrics().into_iter().filter_map(|m| catalog.metric(m)).collect();
    let mut events: Vec<&str> = metrics.iter().flat_map(|m| m.events()).map(EventName::as_str).collect();
    events.sort_unstable();
    events.dedup();
    let slot = |event: &str| events.iter().position(|e| *e == event).expect("every metric's event is listed");
    let (x, e) = ("x", "e");
    let col = |table: &str, c: &str| format!("{table}.{}", ident(c));
    // The segment's column, carried from the first exposure to the sums.
    let carry = |table: &str| by.map_or(String::new(), |_| format!(", {table}.segment"));

    let mut sql = String::new();
    let _ = writeln!(
        sql,
        "-- offerlab aggregates of test {} (phase {}): one row per variant, shop-local day\n\
         -- ({}) of the visitor's first exposure, and metric.",
        exp.id.as_str(),
        exp.allocation_version,
        exp.timezone
    );
    let _ = writeln!(sql, "WITH first_exposure AS (");
    let _ = writeln!(
        sql,
        "    SELECT DISTINCT ON ({v}) {v} AS visitor, {var} AS variant, {ts} AS ts{segment}",
        v = col(x, &layout.visitor_column),
        var = col(x, &layout.variant_column),
        ts = col(x, &layout.ts_column),
        segment = by.map_or(String::new(), |attribute| format!(
            ", ({} ->> {}) AS segment",
            col(x, &layout.attributes_column),
            literal(attribute)
        ))
    );
    let _ = writeln!(sql, "    FROM {} AS {x}", ident(&layout.exposures_table));
    let _ = write!(sql, "    WHERE {} = {}", col(x, &layout.experiment_column), literal(exp.id.as_str()));
    if !layout.phase_column.is_empty() {
        let _ = write!(sql, " AND {} = {}", col(x, &layout.phase_column), exp.allocation_version);
    }
    let _ = writeln!(sql, "\n    ORDER BY {}, {}\n),", col(x, &layout.visitor_column), col(x, &layout.ts_column));

    let _ = writeln!(sql, "per_visitor AS (\n    SELECT f.visitor, f.variant, f.ts{}", carry("f"));
    let tally = |sql: &mut String, only: String, suffix: String| {
        let _ = writeln!(sql, "         , count({}) {only} AS c{suffix}", col(e, &layout.ts_column));
        let _ = writeln!(sql, "         , coalesce(sum({}) {only}, 0) AS s{suffix}", col(e, &layout.value_column));
    };
    let ts = col(e, &layout.ts_column);
    for (i, event) in events.iter().enumerate() {
        let only = format!("FILTER (WHERE {} = {} AND {ts} >= f.ts)", col(e, &layout.name_column), literal(event));
        tally(&mut sql, only, i.to_string());
    }
    // A CUPED metric's pre-period: [first exposure − days, first exposure),
    // in exact 24-hour days as the service counts them: an interval in
    // days is calendar days in the session's time zone, and across a
    // daylight-saving switch 14 of them are 335 or 337 hours.
    let cuped: Vec<(usize, &str, u32)> =
        metrics.iter().enumerate().filter_map(|(i, m)| Some((i, m.single_event()?.as_str(), m.cuped?.days))).collect();
    for (i, event, days) in &cuped {
        let only = format!(
            "FILTER (WHERE {} = {} AND {ts} < f.ts AND {ts} >= f.ts - interval '{} hours')",
            col(e, &layout.name_column),
            literal(event),
            days * 24
        );
        tally(&mut sql, only, format!("_pre{i}"));
    }
    let lookback = cuped.iter().map(|(_, _, d)| *d).max().unwrap_or(0);
    let names = events.iter().map(|n| literal(n)).collect::<Vec<_>>().join(", ");
    let _ = writeln!(sql, "    FROM first_exposure AS f");
    let _ = writeln!(
        sql,
        "    LEFT JOIN {} AS {e} ON {} = f.visitor AND {ts} >= f.ts - interval '{} hours' AND {} IN ({names})",
        ident(&layout.events_table),
        col(e, &layout.visitor_column),
        lookback * 24,
        col(e, &layout.name_column)
    );
    let _ = writeln!(sql, "    GROUP BY f.visitor, f.variant, f.ts{}\n),", carry("f"));

    // A fixed offset is added to UTC (PostgreSQL would read '+01:00' in
    // AT TIME ZONE with the POSIX sign, west of Greenwich); a named zone is
    // PostgreSQL's own, daylight saving included.
    let local = match exp.timezone {
        ShopZone::Offset(o) => format!("(p.ts AT TIME ZONE 'UTC') + interval '{} seconds'", o.local_minus_utc()),
        ShopZone::Named(tz) => format!("p.ts AT TIME ZONE {}", literal(tz.name())),
    };
    let _ = writeln!(sql, "per_metric AS (");
    let _ = writeln!(sql, "    SELECT p.variant, ({local})::date AS date, m.metric, m.x, m.y, m.c{}", carry("p"));
    let _ = writeln!(sql, "    FROM per_visitor AS p\n    CROSS JOIN LATERAL (VALUES");
    let side = |event: &str, how: Aggregate| match how {
        Aggregate::Count => format!("p.c{}::float8", slot(event)),
        Aggregate::Sum => format!("p.s{}::float8", slot(event)),
    };
    let values: Vec<String> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (x, y) = match &m.kind {
                MetricKind::Proportion { event } => (
                    format!("CASE WHEN p.c{} > 0 THEN 1.0 ELSE 0.0 END::float8", slot(event.as_str())),
                    "0.0::float8".into(),
                ),
                MetricKind::Mean { event } => (side(event.as_str(), Aggregate::Sum), "0.0::float8".into()),
                MetricKind::Ratio { numerator, denominator } => (
                    side(numerator.event.as_str(), numerator.aggregate),
                    side(denominator.event.as_str(), denominator.aggregate),
                ),
            };
            let c = match &m.kind {
                _ if m.cuped.is_none() => "0.0::float8".to_owned(),
                MetricKind::Proportion { .. } => format!("CASE WHEN p.c_pre{i} > 0 THEN 1.0 ELSE 0.0 END::float8"),
                _ => format!("p.s_pre{i}::float8"),
            };
            format!("        ({}, {x}, {y}, {c})", literal(m.name.as_str()))
        })
        .collect();
    let _ = writeln!(sql, "{}\n    ) AS m(metric, x, y, c)\n),", values.join(",\n"));

    // Each capped metric's cap: a fixed value, or the percentile of its
    // values over all variants (PERCENTILE_CONT interpolates linearly).
    let caps: Vec<String> = capped_metrics(exp, catalog)
        .into_iter()
        .map(|(name, cap)| match cap {
            Cap::Absolute(a) => format!("    SELECT {}::text AS metric, {a:?}::float8 AS cap", literal(name)),
            Cap::Percentile { percentile, ignore_zeros } => format!(
                "    SELECT {m}::text AS metric, percentile_cont({percentile:?}) WITHIN GROUP (ORDER BY x)::float8 AS cap\n    \
                 FROM per_metric WHERE metric = {m}{zeros}",
                m = literal(name),
                zeros = if ignore_zeros { " AND x <> 0" } else { "" }
            ),
        })
        .chain(["    SELECT NULL::text AS metric, NULL::float8 AS cap WHERE false".to_owned()])
        .collect();
    let _ = writeln!(sql, "caps AS (\n{}\n),", caps.join("\n    UNION ALL\n"));
    let _ = writeln!(
        sql,
        "capped AS (\n    \
         SELECT p.variant, p.date, p.metric, least(p.x, coalesce(k.cap, 'Infinity'))::float8 AS x, p.y,\n           \
         least(p.c, coalesce(k.cap, 'Infinity'))::float8 AS c, k.cap, coalesce(p.x > k.cap, false) AS above{}\n    \
         FROM per_metric AS p LEFT JOIN caps AS k ON k.metric = p.metric\n)",
        carry("p")
    );
    sql
}

/// Runs the queries on the PostgreSQL at `url`: the aggregates, and what
/// each cap did (an entry per capped metric, as the service reports).
pub async fn fetch(
    url: &str,
    exp: &Experiment,
    catalog: &Catalog,
    layout: &Layout,
) -> Result<(Vec<AggregateRow>, Vec<CapApplied>), WarehouseError> {
    let (rows, applied) = fetch_by(url, exp, catalog, layout, None).await?;
    Ok((rows.into_iter().map(|(_, r)| r).collect(), applied))
}

/// [`fetch`], each row with the raw value of the segment attribute `by`
/// (`None` without `by`, or for visitors without one).
pub async fn fetch_by(
    url: &str,
    exp: &Experiment,
    catalog: &Catalog,
    layout: &Layout,
    by: Option<&str>,
) -> Result<(Vec<(Option<String>, AggregateRow)>, Vec<CapApplied>), WarehouseError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(WarehouseError::Url)?;
    // The query's literals ([`literal`]) double quotes and leave backslashes
    // alone, which is safe only with standard strings: a warehouse set to
    // `standard_conforming_strings = off` would read `\'` as an escaped
    // quote, and an event name ending in a backslash would leave its literal.
    let options = format!("{} -c standard_conforming_strings=on", config.get_options().unwrap_or_default());
    config.options(options.trim_start());
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(WarehouseError::Connect)?;
    let driver = tokio::spawn(connection);
    let rows = client.query(&aggregates_sql_by(exp, catalog, layout, by), &[]).await.map_err(WarehouseError::Query)?;
    let caps = client.query(&caps_sql(exp, catalog, layout), &[]).await.map_err(WarehouseError::Query)?;
    drop(client);
    let _ = driver.await;
    let rows = rows
        .iter()
        .map(|r| {
            let row = AggregateRow {
                variant: r.get::<_, Option<String>>(0).ok_or(WarehouseError::UnknownVariant)?,
                date: r.get(1),
                metric: r.get(2),
                moments: moments_at(r, 3),
            };
            Ok((by.and_then(|_| r.get::<_, Option<String>>(12)), row))
        })
        .collect::<Result<_, _>>()?;
    let applied = capped_metrics(exp, catalog)
        .into_iter()
        .map(|(metric, cap)| {
            let row = caps.iter().find(|r| r.get::<_, &str>(0) == metric);
            let count = |i: usize| row.map_or(0, |r| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0));
            CapApplied {
                metric: metric.to_owned(),
                cap,
                value: row.and_then(|r| r.get::<_, Option<f64>>(1)),
                capped_visitors: count(2),
                visitors: count(3),
            }
        })
        .collect();
    Ok((rows, applied))
}

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("the warehouse URL is not a PostgreSQL connection string ({}); use postgres://USER:PASSWORD@HOST:PORT/DATABASE", said(.0))]
    Url(tokio_postgres::Error),
    #[error("cannot reach the warehouse: {}", said(.0))]
    Connect(tokio_postgres::Error),
    #[error("the aggregates query failed: {}; check the table and column names (see `offerlab sql --help`)", said(.0))]
    Query(tokio_postgres::Error),
    #[error("the aggregates query returned a row without a variant (a variant the test does not define)")]
    UnknownVariant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_as_identifiers_and_values_as_literals() {
        assert_eq!(ident("analytics.fact_events"), "\"analytics\".\"fact_events\"");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("ends\\"), "E'ends\\\\'");
        assert_eq!(literal("a\\'b"), "E'a\\\\''b'");
    }
}
