//! `offerlab analyze`: a report from aggregates made outside the service,
//! either a JSON or CSV file of sums or a warehouse query over raw
//! exposures and events. Every row is checked before anything is analysed,
//! so a bad row is named instead of skewing the report.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::aggregates::{check_rows, read_aggregates_by, AggregatesError};
use crate::analysis::analyze;
use crate::capping::capped_metrics;
use crate::experiment::load::load_file;
use crate::experiment::ValidationErrors;
use crate::warehouse::{self, Layout, WarehouseError};
use crate::wire::v1::{Report, Segments};

/// Where the aggregates come from.
pub enum Source<'a> {
    /// A file of per-variant, per-day sums, taken as given.
    File(&'a Path),
    /// offerlab's warehouse query on a PostgreSQL database of raw
    /// exposures and events, with the caps of `metrics.toml` applied.
    Warehouse { url: &'a str, layout: &'a Layout },
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{0}")]
    Definitions(#[from] ValidationErrors),
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: AggregatesError },
    #[error("{0}")]
    Warehouse(#[from] WarehouseError),
    #[error("{}\n{} problem(s); nothing was analysed", .0.join("\n"), .0.len())]
    Rows(Vec<String>),
    /// `--by` names a segment the segments.toml beside the test does not
    /// define.
    #[error("unknown segment \"{0}\"; the segments.toml beside the test defines {1}")]
    UnknownSegment(String, String),
}

/// A finished report, and the notes to show beside it (a capped metric
/// whose sums came from a file, which cannot be capped here); with `--by`,
/// the test's breakdown by that segment too.
pub struct Analysed {
    pub report: Report,
    pub notes: Vec<String>,
    pub segments: Option<Segments>,
}

/// Analyses the test defined in `experiment` (with `metrics`, by default
/// the `metrics.toml` beside it) on the aggregates of `source`, as of
/// `today` (by default, today in the test's time zone); with `by`, also by
/// that segment of the `segments.toml` beside it (the file's rows then
/// carry the segment's attribute as a column; the warehouse query reads it
/// from the exposures' attributes).
pub async fn analyze_aggregates(
    experiment: &Path,
    metrics: Option<&Path>,
    source: Source<'_>,
    today: Option<NaiveDate>,
    by: Option<&str>,
) -> Result<Analysed, OfflineError> {
    let catalog = load_file(experiment, metrics)?;
    let exp = catalog.experiments().next().expect("a loaded file holds one experiment").clone();
    let segment = match by {
        None => None,
        Some(name) => Some(
            catalog
                .segment(name)
                .cloned()
                .ok_or_else(|| OfflineError::UnknownSegment(name.to_owned(), catalog.segment_names()))?,
        ),
    };
    let attribute = segment.as_ref().map(|s| s.attribute.as_str());
    let mut notes = Vec::new();
    let (labelled, capping, origin) = match source {
        Source::File(path) => {
            let file = std::fs::File::open(path).map_err(|source| OfflineError::Open { path: path.into(), source })?;
            let rows = read_aggregates_by(file, attribute)
                .map_err(|source| OfflineError::Read { path: path.into(), source })?;
            for (metric, _) in capped_metrics(&exp, &catalog) {
                notes.push(format!(
                    "{metric} is capped in metrics.toml, but {} holds sums, not visitors' values: they are analysed as given, so cap them where they are made",
                    path.display()
                ));
            }
            (rows, Vec::new(), path.display().to_string())
        }
        Source::Warehouse { url, layout } => {
            let (rows, capping) = warehouse::fetch_by(url, &exp, &catalog, layout, attribute).await?;
            (rows, capping, "the warehouse query".to_owned())
        }
    };
    let rows: Vec<_> = labelled.iter().map(|(_, r)| r.clone()).collect();
    let problems = check_rows(&exp, &catalog, &rows);
    if !problems.is_empty() {
        return Err(OfflineError::Rows(problems.iter().map(|p| format!("{origin}: {p}")).collect()));
    }
    let today = today.unwrap_or_else(|| exp.local_day(chrono::Utc::now()));
    let report = analyze(&exp, &catalog, &rows, capping.clone(), today);
    let segments = segment.map(|segment| {
        let sums = crate::segments::from_labelled(&exp, &segment, &labelled);
        let breakdowns = crate::segments::finish(&exp, &catalog, &[segment], vec![sums]);
        Segments::new(exp.id.as_str(), today, &breakdowns)
    });
    Ok(Analysed { report: Report::new(&report, exp.allocation_version, None), notes, segments })
}
