//! Reading a folder of definitions into a [`Catalog`], or refusing it.
//!
//! Every rule violation becomes a [`ValidationError`] naming the file, the
//! line when the TOML has one, and what to change. All files are checked and
//! all errors reported at once; any error refuses the whole folder, so the
//! service never runs a half-loaded set.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use chrono::NaiveDate;
use toml::Spanned;

use super::conflicts::check_conflicts;
use super::errors::FileErrors;
pub use super::errors::{ValidationError, ValidationErrors};
use super::metric::Metric;
pub use super::metrics_file::parse_metrics;
use super::metrics_file::parse_metrics_partly;
use super::notify_file::{parse_notify, NOTIFY_FILE};
use super::raw::RawExperiment;
use super::segments_file::{parse_segments, SEGMENTS_FILE};
use super::{Catalog, Experiment, ExperimentId, ShopZone, StatsConfig, Status, Targeting, Variant, Weight};
use super::{MetricName, VariantIndex};
use crate::bucketing::Namespace;
use crate::ids::MAX_VARIANTS;

/// The file that defines the metrics, inside the experiments folder.
pub const METRICS_FILE: &str = "metrics.toml";

/// How far the weights of a definition may sum from 1.
const WEIGHT_SUM_TOLERANCE: f64 = 0.001;

/// Loads and validates every definition in `dir`.
pub fn load_dir(dir: &Path) -> Result<Catalog, ValidationErrors> {
    let shown = dir.display().to_string();
    let one = |file: String, message: String| ValidationErrors(vec![ValidationError { file, line: None, message }]);
    let entries = std::fs::read_dir(dir).map_err(|e| {
        one(shown.clone(), format!("cannot read the experiments folder ({e}); create it or pass --experiments DIR"))
    })?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();

    let metrics_path = dir.join(METRICS_FILE);
    let metrics_shown = metrics_path.display().to_string();
    let metrics_text = std::fs::read_to_string(&metrics_path).map_err(|e| {
        one(
            metrics_shown.clone(),
            format!("cannot read the metrics file ({e}); every experiments folder needs a {METRICS_FILE} that defines the metrics its tests name"),
        )
    })?;
    let (metrics, mut errors) = parse_metrics_partly(&metrics_shown, &metrics_text);
    // With errors in the metrics file, a test naming a metric it failed to
    // define is not a second error: that file's own error is the one to fix.
    let metrics_complete = errors.is_empty();

    let mut experiments = Vec::new();
    let mut uses = MetricUse::default();
    for path in files
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n != METRICS_FILE && n != NOTIFY_FILE && n != SEGMENTS_FILE))
    {
        let file = path.display().to_string();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        match std::fs::read_to_string(path) {
            Ok(text) => match check_experiment(&file, stem, &text, &metrics, metrics_complete, &mut uses) {
                Ok(exp) => experiments.push(exp),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(ValidationError { file, line: None, message: format!("cannot read the file ({e})") }),
        }
    }
    errors.extend(check_conflicts(&experiments));
    uses.misspelt_in_metrics_file(&mut errors, &metrics, &metrics_shown, &metrics_text);
    let ids = experiments.iter().map(|e| e.id.clone()).collect();
    let webhooks = optional_file(dir, NOTIFY_FILE, &mut errors, |file, text| parse_notify(file, text, &ids));
    let hashed = experiments.iter().map(|e| e.hash_attribute.as_str()).collect();
    let segments = optional_file(dir, SEGMENTS_FILE, &mut errors, |file, text| parse_segments(file, text, &hashed));
    if errors.is_empty() {
        Ok(Catalog::new(experiments, metrics).with_webhooks(webhooks).with_segments(segments))
    } else {
        Err(ValidationErrors(errors))
    }
}

/// Parses the optional file `name` of `dir` with `parse`: empty when the
/// file is absent, and its errors added to `errors`.
fn optional_file<T: Default>(
    dir: &Path,
    name: &str,
    errors: &mut Vec<ValidationError>,
    parse: impl FnOnce(&str, &str) -> Result<T, Vec<ValidationError>>,
) -> T {
    let path = dir.join(name);
    if !path.exists() {
        return T::default();
    }
    let file = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&file, &text).unwrap_or_else(|e| {
            errors.extend(e);
            T::default()
        }),
        Err(e) => {
            errors.push(ValidationError { file, line: None, message: format!("cannot read the file ({e})") });
            T::default()
        }
    }
}

/// Loads one experiment file with the metrics file beside it (or the one
/// given), and the segments file beside it when there is one, for
/// `offerlab analyze` on definitions outside a service.
pub fn load_file(path: &Path, metrics_path: Option<&Path>) -> Result<Catalog, ValidationErrors> {
    let sibling = path.parent().unwrap_or(Path::new(".")).join(METRICS_FILE);
    let metrics_path = metrics_path.unwrap_or(&sibling);
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            ValidationErrors(vec![ValidationError {
                file: p.display().to_string(),
                line: None,
                message: format!("cannot read the file ({e})"),
            }])
        })
    };
    let metrics_file = metrics_path.display().to_string();
    let metrics = parse_metrics(&metrics_file, &read(metrics_path)?).map_err(ValidationErrors)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let exp = parse_experiment(&path.display().to_string(), stem, &read(path)?, &metrics).map_err(ValidationErrors)?;
    let mut errors = Vec::new();
    let hashed = std::iter::once(exp.hash_attribute.as_str()).collect();
    let folder = path.parent().unwrap_or(Path::new("."));
    let segments = optional_file(folder, SEGMENTS_FILE, &mut errors, |file, text| parse_segments(file, text, &hashed));
    if !errors.is_empty() {
        return Err(ValidationErrors(errors));
    }
    Ok(Catalog::new(vec![exp], metrics).with_segments(segments))
}

/// Parses one experiment file whose stem is `stem`.
pub fn parse_experiment(
    file: &str,
    stem: &str,
    text: &str,
    metrics: &BTreeMap<MetricName, Metric>,
) -> Result<Experiment, Vec<ValidationError>> {
    check_experiment(file, stem, text, metrics, true, &mut MetricUse::default())
}

/// Which metric names the tests of a folder name, and their errors for the
/// names `metrics.toml` does not define.
#[derive(Default)]
struct MetricUse {
    named: BTreeSet<String>,
    unknown: Vec<(String, ValidationError)>,
}

impl MetricUse {
    /// A metric misspelt in `metrics.toml` (`[order_convresion]`) shows as
    /// one unknown metric in every test that names the right one. When two
    /// tests or more agree on a missing name and a defined metric no test
    /// names is within two edits of it, the tests' errors for that name give
    /// way to one at the metrics file's line, naming both and the tests.
    /// (One test alone naming it is more likely the typo: its own error,
    /// which lists the defined metrics, stays.)
    fn misspelt_in_metrics_file(
        &self,
        errors: &mut Vec<ValidationError>,
        metrics: &BTreeMap<MetricName, Metric>,
        file: &str,
        text: &str,
    ) {
        let mut by_name: BTreeMap<&str, Vec<&ValidationError>> = BTreeMap::new();
        for (name, e) in &self.unknown {
            by_name.entry(name).or_default().push(e);
        }
        for (missing, errs) in by_name {
            let tests: BTreeSet<String> = errs
                .iter()
                .map(|e| Path::new(&e.file).file_name().map_or(e.file.clone(), |n| n.to_string_lossy().into_owned()))
                .collect();
            let unused = metrics.keys().map(MetricName::as_str).filter(|m| !self.named.contains(*m));
            let closest = unused.map(|m| (strsim::levenshtein(missing, m), m)).filter(|(d, _)| *d <= 2).min();
            let (Some((_, defined)), true) = (closest, tests.len() >= 2) else {
                continue;
            };
            let gone: Vec<ValidationError> = errs.into_iter().cloned().collect();
            errors.retain(|e| !gone.contains(e));
            let table = format!("[{defined}]");
            errors.push(ValidationError {
                file: file.to_owned(),
                line: text.lines().position(|l| l.trim_start().starts_with(&table)).map(|i| i + 1),
                message: format!(
                    "metric \"{defined}\" is named by no test, and \"{missing}\", which {} tests name ({}), is not defined; rename {table} to [{missing}] if that is the one meant",
                    tests.len(),
                    tests.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
}

/// [`parse_experiment`]; `metrics_complete` is false when the metrics file
/// had errors, so a metric it failed to define is not reported again here.
fn check_experiment(
    file: &str,
    stem: &str,
    text: &str,
    metrics: &BTreeMap<MetricName, Metric>,
    metrics_complete: bool,
    uses: &mut MetricUse,
) -> Result<Experiment, Vec<ValidationError>> {
    let mut errs = FileErrors::new(file, text);
    let raw: RawExperiment = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            errs.toml(e);
            return Err(errs.errors);
        }
    };

    let id = match ExperimentId::parse(raw.id.get_ref()) {
        Ok(id) => {
            if id.as_str() != stem {
                errs.at(
                    raw.id.span(),
                    format!("id \"{id}\" differs from the file name \"{stem}.toml\"; rename the file to {id}.toml or set id = \"{stem}\""),
                );
            }
            Some(id)
        }
        Err(m) => {
            errs.at(raw.id.span(), format!("{m}; choose a short slug such as \"cart-protection-copy\""));
            None
        }
    };

    let start = parse_start(&mut errs, &raw.start);
    let timezone = match &raw.timezone {
        None => Some(ShopZone::UTC),
        Some(tz) => tz.get_ref().parse::<ShopZone>().map_err(|e| errs.at(tz.span(), e.to_string())).ok(),
    };

    let cycle = *raw.business_cycle_days.get_ref();
    if !(1..=366).contains(&cycle) {
        errs.at(
            raw.business_cycle_days.span(),
            format!("business_cycle_days = {cycle}; a business cycle is 1 to 366 days (7 for a weekly rhythm)"),
        );
    }
    let coverage = *raw.coverage.get_ref();
    if !(0.0..=1.0).contains(&coverage) {
        errs.at(raw.coverage.span(), format!("coverage = {coverage} is outside [0, 1]; it is the share of eligible visitors that enter the test (1.0 for all)"));
    }
    if raw.hash_attribute.is_empty() {
        errs.whole("hash_attribute is empty; name the attribute to hash, usually \"visitor_id\"");
    }

    let namespace = raw.namespace.as_ref().and_then(|ns| {
        let [a, b] = ns.get_ref().range;
        if ns.get_ref().id.is_empty() {
            errs.at(ns.span(), "namespace id is empty; name the group of mutually exclusive tests");
            None
        } else if !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&b) || a >= b {
            errs.at(ns.span(), format!("namespace range [{a}, {b}] must satisfy 0 <= start < end <= 1; give each test of the group its own slice, e.g. [0.0, 0.5] and [0.5, 1.0]"));
            None
        } else {
            Some(Namespace { id: ns.get_ref().id.clone(), start: a, end: b })
        }
    });

    for (attr, values) in &raw.targeting {
        if values.is_empty() {
            errs.whole(format!(
                "targeting.{attr} lists no values; list the values that qualify or remove the attribute"
            ));
        }
    }

    let variants = parse_variants(&mut errs, &raw);
    let winner = check_status(&mut errs, &raw, &variants);

    for name in std::iter::once(&raw.primary_metric).map(|m| (m.span(), vec![m.get_ref().clone()])).chain([
        (raw.guardrail_metrics.span(), raw.guardrail_metrics.get_ref().clone()),
        (raw.secondary_metrics.span(), raw.secondary_metrics.get_ref().clone()),
    ]) {
        uses.named.extend(name.1.iter().cloned());
        for m in name.1.iter().filter(|m| metrics_complete && !metrics.contains_key(m.as_str())) {
            let known: Vec<&str> = metrics.keys().map(MetricName::as_str).collect();
            let message = if known.is_empty() {
                format!("unknown metric \"{m}\"; {METRICS_FILE} defines no metric yet, define it there")
            } else {
                format!("unknown metric \"{m}\"; define it in {METRICS_FILE} or use one of: {}", known.join(", "))
            };
            errs.at(name.0.clone(), message);
            uses.unknown.push((m.clone(), errs.errors.last().expect("just pushed").clone()));
        }
    }

    let stats = parse_stats(&mut errs, &raw, metrics);
    let allocation_version = match &raw.allocation_version {
        None => 1,
        Some(v) if (1..=i64::from(u32::MAX)).contains(v.get_ref()) => *v.get_ref() as u32,
        Some(v) => {
            errs.at(v.span(), format!("allocation_version = {}; it is a whole number from 1 up", v.get_ref()));
            1
        }
    };

    let (Some(id), Some(start), Some(timezone)) = (id, start, timezone) else {
        return Err(errs.errors);
    };
    let seed = raw.seed.clone().unwrap_or_else(|| id.to_string());
    let surface_line = errs.line_of(raw.surface.span());
    let variants_line = raw.variants.first().and_then(|v| errs.line_of(v.span()));
    errs.finish(
        Experiment {
            seed,
            id,
            name: raw.name,
            hypothesis: raw.hypothesis,
            status: *raw.status.get_ref(),
            surface: *raw.surface.get_ref(),
            dimension: raw.dimension,
            start,
            timezone,
            business_cycle_days: cycle.clamp(1, 366) as u32,
            coverage,
            hash_attribute: raw.hash_attribute,
            namespace,
            targeting: Targeting(raw.targeting),
            winner,
            primary_metric: raw.primary_metric.into_inner(),
            guardrail_metrics: raw.guardrail_metrics.into_inner(),
            secondary_metrics: raw.secondary_metrics.into_inner(),
            stats,
            variants,
            allocation_version,
            source: file.to_owned(),
            surface_line,
            variants_line,
            ranges: Vec::new(),
            seeded: crate::bucketing::Fnv::START,
        }
        .prepared(),
    )
}

fn parse_start(errs: &mut FileErrors, start: &Spanned<toml::Value>) -> Option<NaiveDate> {
    let text = match start.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => other.to_string(),
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok().or_else(|| {
        errs.at(
            start.span(),
            format!("start = {text} is not a date; write it as \"YYYY-MM-DD\", the test's first day"),
        );
        None
    })
}

fn parse_variants(errs: &mut FileErrors, raw: &RawExperiment) -> Vec<Variant> {
    if raw.variants.len() < 2 {
        // At the one variant there is, or at the end of the file, where
        // the missing ones go.
        let at = raw.variants.first().map_or(errs.text.len().saturating_sub(1)..errs.text.len(), |v| v.span());
        errs.at(
            at,
            format!(
                "{} variant(s) defined; a test needs at least two [[variants]]: the control first, then each treatment",
                raw.variants.len()
            ),
        );
    }
    if raw.variants.len() > MAX_VARIANTS {
        errs.at(
            raw.variants[MAX_VARIANTS].span(),
            format!(
                "{} variants defined; a test takes at most {MAX_VARIANTS} (each treatment divides alpha, so more could never conclude)",
                raw.variants.len()
            ),
        );
    }
    let mut seen = HashSet::new();
    let mut variants = Vec::new();
    for v in &raw.variants {
        let span = v.span();
        let v = v.get_ref();
        if v.key.is_empty()
            || v.key.len() > 64
            || !v.key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errs.at(span.clone(), format!("variant key \"{}\" must be 1 to 64 letters, digits, '-' or '_'", v.key));
        }
        if !seen.insert(v.key.clone()) {
            errs.at(span.clone(), format!("variant key \"{}\" is used twice; give every variant its own key", v.key));
        }
        let weight = match Weight::parse(v.weight) {
            Ok(w) => w,
            Err(m) => {
                errs.at(span, format!("variant \"{}\" has weight {m}; each weight is a share between 0 and 1", v.key));
                Weight::parse(0.0).expect("zero is a weight")
            }
        };
        let payload = v
            .payload
            .as_ref()
            .map(|t| serde_json::to_value(t).unwrap_or(serde_json::Value::Null))
            .unwrap_or_else(|| serde_json::json!({}));
        variants.push(Variant::new(v.key.clone(), weight, payload));
    }
    let sum: f64 = raw.variants.iter().map(|v| v.get_ref().weight).sum();
    if raw.variants.len() >= 2 && (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
        let span = raw.variants[0].span();
        errs.at(span, format!("weights sum to {sum}; make them add up to 1 (for two variants, 0.5 and 0.5)"));
    }
    variants
}

fn check_status(errs: &mut FileErrors, raw: &RawExperiment, variants: &[Variant]) -> Option<VariantIndex> {
    let status = *raw.status.get_ref();
    match (&raw.winner, status) {
        (None, Status::Concluded) => {
            errs.at(raw.status.span(), "status = \"concluded\" needs a winner; add winner = \"<variant key>\" naming the variant everyone now sees");
            None
        }
        (Some(w), _) => {
            let idx = variants.iter().position(|v| &v.key == w.get_ref()).and_then(VariantIndex::new);
            if idx.is_none() {
                let keys: Vec<&str> = variants.iter().map(|v| v.key.as_str()).collect();
                errs.at(
                    w.span(),
                    format!("winner \"{}\" is not a variant; use one of: {}", w.get_ref(), keys.join(", ")),
                );
            }
            if status != Status::Concluded {
                errs.at(w.span(), "winner is only for concluded tests; remove it or set status = \"concluded\"");
            }
            idx
        }
        (None, _) => None,
    }
}

fn parse_stats(errs: &mut FileErrors, raw: &RawExperiment, metrics: &BTreeMap<MetricName, Metric>) -> StatsConfig {
    let mut stats = StatsConfig::default();
    let Some(s) = &raw.stats else {
        return stats;
    };
    let span = s.span();
    let s = s.get_ref();
    let mut check = |name: &str, value: Option<f64>, ok: fn(f64) -> bool, rule: &str, slot: &mut f64| {
        if let Some(v) = value {
            if ok(v) {
                *slot = v;
            } else {
                errs.at(span.clone(), format!("stats.{name} = {v}; {rule}"));
            }
        }
    };
    let open_unit = |x: f64| x > 0.0 && x < 1.0;
    check(
        "alpha",
        s.alpha,
        open_unit,
        "alpha is a false-positive rate strictly between 0 and 1, usually 0.05",
        &mut stats.alpha,
    );
    check(
        "power",
        s.power,
        open_unit,
        "power is a probability strictly between 0 and 1, usually 0.8",
        &mut stats.power,
    );
    check(
        "mde",
        s.mde,
        |x| x > 0.0 && x.is_finite(),
        "mde is the smallest relative lift worth detecting, above 0 (0.10 for 10%)",
        &mut stats.mde,
    );
    check(
        "baseline",
        s.baseline,
        |x| x > 0.0 && x.is_finite(),
        "baseline is the expected control value of the primary metric, above 0",
        &mut stats.baseline,
    );
    check(
        "sequential_tuning",
        s.sequential_tuning,
        |x| x >= 1.0 && x.is_finite(),
        "sequential_tuning is the expected total sample at decision time, at least 1 (default 5000)",
        &mut stats.sequential_tuning,
    );
    if let Some(sd) = s.baseline_sd {
        if sd > 0.0 && sd.is_finite() {
            stats.baseline_sd = Some(sd);
        } else {
            errs.at(
                span.clone(),
                format!("stats.baseline_sd = {sd}; it is the expected per-visitor standard deviation, above 0"),
            );
        }
    }
    stats.sequential = s.sequential.unwrap_or(false);
    let primary_is_proportion = metrics.get(raw.primary_metric.get_ref().as_str()).is_some_and(Metric::is_proportion);
    if primary_is_proportion && stats.baseline >= 1.0 {
        errs.at(span, format!("stats.baseline = {}; the primary metric is a proportion, so its baseline is a rate below 1 (0.04 for 4%)", stats.baseline));
    }
    stats
}
