//! Experiment and metric definitions: the validated domain types that the
//! TOML files in `experiments/` parse into.
//!
//! A value of these types is always valid: the loader ([`load`]) turns the
//! raw TOML shape ([`raw`]) into them or refuses the whole folder, so a
//! definition is never half-loaded.

mod conflicts;
mod errors;
pub mod load;
pub mod metric;
mod metrics_file;
pub mod notify_file;
mod raw;
pub mod segments_file;
pub mod zone;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::bucketing::{bucket_ranges, BucketRange, Fnv, Namespace};

/// Attributes the storefront sends about a visitor; values are compared as
/// strings.
pub type Attributes = BTreeMap<String, String>;
pub use load::{load_dir, ValidationError, ValidationErrors};
pub use metric::{Aggregate, Cap, Metric, MetricKind, Shape, Source, Unit, Units};
pub use notify_file::{Webhook, WebhookFormat};
pub use segments_file::Segment;
pub use zone::ShopZone;

pub use crate::ids::{check_slug, EventName, ExperimentId, MetricName, VariantIndex};

/// A traffic share in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Weight(f64);

impl Weight {
    pub fn parse(x: f64) -> Result<Self, String> {
        if x.is_finite() && (0.0..=1.0).contains(&x) {
            Ok(Weight(x))
        } else {
            Err(format!("{x} is outside [0, 1]"))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Running,
    Paused,
    Concluded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Concluded => "concluded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    ProductPage,
    Cart,
    Checkout,
    PostPurchase,
    Email,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::ProductPage => "product_page",
            Surface::Cart => "cart",
            Surface::Checkout => "checkout",
            Surface::PostPurchase => "post_purchase",
            Surface::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Surface> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// The one element a test varies: testing one element at a time is what
/// makes a result attributable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Placement,
    Copy,
    PricingDisplay,
    OfferCount,
    Bundle,
}

#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    pub key: String,
    pub weight: Weight,
    /// What the storefront renders, as written in the definition.
    pub payload: serde_json::Value,
    /// `payload` written out once at load: an assignment's reply copies
    /// this text ([`crate::wire::v1::Assignment`]).
    #[serde(skip)]
    pub payload_json: Box<serde_json::value::RawValue>,
    /// The fixed part of this variant's `/v1/assign` reply, written once,
    /// on first use, by the wire layer ([`crate::wire::v1::AssignReply::write`]):
    /// the per-request cost of a reply is then the visitor's own fields.
    #[serde(skip)]
    pub reply_head: std::sync::OnceLock<Box<str>>,
}

impl Variant {
    pub fn new(key: String, weight: Weight, payload: serde_json::Value) -> Self {
        let payload_json = serde_json::value::to_raw_value(&payload).expect("a JSON value serialises");
        Variant { key, weight, payload, payload_json, reply_head: std::sync::OnceLock::new() }
    }
}

/// `payload_json` and `reply_head` are derived, so they take no part.
impl PartialEq for Variant {
    fn eq(&self, o: &Variant) -> bool {
        self.key == o.key && self.weight == o.weight && self.payload == o.payload
    }
}

/// Every listed attribute must equal one of its listed values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Targeting(pub BTreeMap<String, Vec<String>>);

impl Targeting {
    pub fn matches(&self, attributes: &Attributes) -> bool {
        self.0.iter().all(|(attr, allowed)| attributes.get(attr).is_some_and(|v| allowed.contains(v)))
    }

    /// True when no visitor can match both: some attribute is targeted by
    /// both with no value in common.
    pub fn disjoint_from(&self, other: &Targeting) -> bool {
        self.0
            .iter()
            .any(|(attr, mine)| other.0.get(attr).is_some_and(|theirs| !mine.iter().any(|v| theirs.contains(v))))
    }
}

/// The statistical plan of a test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsConfig {
    pub alpha: f64,
    pub power: f64,
    /// Smallest relative lift worth detecting on the primary metric.
    pub mde: f64,
    /// Expected control value of the primary metric, used until data arrives.
    pub baseline: f64,
    /// Expected per-visitor standard deviation of a mean primary metric,
    /// used for its sample size until the control has data.
    pub baseline_sd: Option<f64>,
    /// Always-valid inference, safe to look at every day.
    pub sequential: bool,
    /// Expected total sample at decision time; tunes the confidence sequence.
    pub sequential_tuning: f64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            alpha: 0.05,
            power: 0.8,
            mde: 0.1,
            baseline: 0.05,
            baseline_sd: None,
            sequential: false,
            sequential_tuning: 5000.0,
        }
    }
}

/// A validated experiment definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub id: ExperimentId,
    pub name: String,
    pub hypothesis: String,
    pub status: Status,
    pub surface: Surface,
    pub dimension: Dimension,
    /// First day of the test: exposures dated earlier are refused. (Days and
    /// cycles count from the first exposure of a phase, not from here.)
    pub start: NaiveDate,
    /// The shop's time zone: it decides a visitor's calendar day.
    pub timezone: ShopZone,
    pub business_cycle_days: u32,
    pub coverage: f64,
    pub hash_attribute: String,
    pub seed: String,
    pub namespace: Option<Namespace>,
    pub targeting: Targeting,
    /// Index of the winning variant of a concluded test.
    pub winner: Option<VariantIndex>,
    pub primary_metric: String,
    pub guardrail_metrics: Vec<String>,
    pub secondary_metrics: Vec<String>,
    pub stats: StatsConfig,
    /// The first variant is the control.
    pub variants: Vec<Variant>,
    /// Raised on purpose when the allocation of a running test changes.
    pub allocation_version: u32,
    /// Path of the file it came from, for messages.
    #[serde(skip)]
    pub source: String,
    /// Line of `surface` in that file, for messages about tests that could
    /// share a visitor.
    #[serde(skip)]
    pub surface_line: Option<usize>,
    /// Line of the first `[[variants]]`, for messages about the allocation.
    #[serde(skip)]
    pub variants_line: Option<usize>,
    /// The bucket ranges, computed once at load: assignment reads them on
    /// every request.
    #[serde(skip)]
    ranges: Vec<BucketRange>,
    /// FNV state after the seed, computed once at load: hashing a visitor
    /// then feeds only their id.
    #[serde(skip)]
    seeded: Fnv,
}

impl Experiment {
    pub fn weights(&self) -> Vec<f64> {
        self.variants.iter().map(|v| v.weight.get()).collect()
    }

    /// The bucket ranges assignment uses.
    pub fn ranges(&self) -> &[BucketRange] {
        &self.ranges
    }

    /// FNV state after the seed (see [`crate::bucketing::hash_v2`]).
    pub fn seeded(&self) -> Fnv {
        self.seeded
    }

    /// Computes what assignment reads on every request (bucket ranges,
    /// seed state); the loader calls it once.
    fn prepared(mut self) -> Self {
        self.ranges = bucket_ranges(self.variants.len(), self.coverage, Some(&self.weights()));
        self.seeded = Fnv::START.text(&self.seed);
        self
    }

    pub fn variant_index(&self, key: &str) -> Option<VariantIndex> {
        self.variants.iter().position(|v| v.key == key).and_then(VariantIndex::new)
    }

    /// The variant at `i`, if this test has one there (a stored index may
    /// come from another phase's variants).
    pub fn variant_at(&self, i: VariantIndex) -> Option<&Variant> {
        self.variants.get(i.get())
    }

    /// The shop's calendar day of an instant.
    pub fn local_day(&self, ts: DateTime<Utc>) -> NaiveDate {
        self.timezone.local_day(ts)
    }

    /// Every metric the test reports: primary, guardrails, secondaries, in
    /// that order and without repeats.
    pub fn all_metrics(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in std::iter::once(&self.primary_metric).chain(&self.guardrail_metrics).chain(&self.secondary_metrics) {
            if !out.contains(&m.as_str()) {
                out.push(m);
            }
        }
        out
    }

    /// The parts of the definition that decide who sees which variant, in
    /// a defined encoding that is stored: [`FINGERPRINT_V2`], then JSON of
    /// seed, hash attribute, coverage, namespace, variants with weights and
    /// targeting, in that order (object keys sorted, numbers in their
    /// shortest round-trip form). If these change while exposures exist,
    /// visitors silently switch arms.
    pub fn allocation_fingerprint(&self) -> String {
        #[derive(Serialize)]
        struct Parts<'a> {
            seed: &'a str,
            hash_attribute: &'a str,
            coverage: f64,
            namespace: Option<(&'a str, f64, f64)>,
            variants: Vec<(&'a str, f64)>,
            targeting: &'a BTreeMap<String, Vec<String>>,
        }
        let parts = Parts {
            seed: &self.seed,
            hash_attribute: &self.hash_attribute,
            coverage: self.coverage,
            namespace: self.namespace.as_ref().map(|n| (n.id.as_str(), n.start, n.end)),
            variants: self.variants.iter().map(|v| (v.key.as_str(), v.weight.get())).collect(),
            targeting: &self.targeting.0,
        };
        format!("{FINGERPRINT_V2}{}", serde_json::to_string(&parts).expect("allocation parts serialize"))
    }

    /// The fingerprint stores written before [`FINGERPRINT_V2`] hold: it
    /// printed the targeting with Rust's `Debug`. Only read, to recognise
    /// an unchanged allocation in such a store and upgrade its record.
    pub fn legacy_allocation_fingerprint(&self) -> String {
        let ns = self.namespace.as_ref().map(|n| format!("{}:{}:{}", n.id, n.start, n.end)).unwrap_or_default();
        let variants: Vec<String> = self.variants.iter().map(|v| format!("{}={}", v.key, v.weight.get())).collect();
        format!(
            "seed={};hash={};coverage={};ns={};variants={};targeting={:?}",
            self.seed,
            self.hash_attribute,
            self.coverage,
            ns,
            variants.join(","),
            self.targeting.0
        )
    }
}

/// How every allocation fingerprint written today begins.
pub const FINGERPRINT_V2: &str = "v2:";

/// A validated, loaded folder: every experiment and the metrics they use.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    experiments: BTreeMap<ExperimentId, Arc<Experiment>>,
    metrics: BTreeMap<MetricName, Metric>,
    /// Per test, the event names its metrics read: only these are tallied.
    reads: BTreeMap<ExperimentId, BTreeSet<EventName>>,
    /// Every event name some metric reads.
    read_by_any: BTreeSet<EventName>,
    /// Per test, its metrics with a CUPED covariate (none for most), so a
    /// write looks at pre-periods only where there are some.
    cuped: BTreeMap<ExperimentId, Vec<MetricName>>,
    /// The webhooks of `notify.toml` (none without the file).
    webhooks: Vec<Webhook>,
    /// The segments of `segments.toml` (none without the file).
    segments: Vec<Segment>,
}

impl Catalog {
    pub fn new(experiments: Vec<Experiment>, metrics: BTreeMap<MetricName, Metric>) -> Self {
        let reads = experiments
            .iter()
            .map(|e| {
                let names = e.all_metrics().into_iter().filter_map(|m| metrics.get(m)).flat_map(Metric::events);
                (e.id.clone(), names.cloned().collect())
            })
            .collect();
        let read_by_any = metrics.values().flat_map(Metric::events).cloned().collect();
        let cuped = experiments
            .iter()
            .map(|e| {
                let adjusted = e.all_metrics().into_iter().filter_map(|m| metrics.get(m)).filter(|m| m.cuped.is_some());
                (e.id.clone(), adjusted.map(|m| m.name.clone()).collect())
            })
            .collect();
        Catalog {
            experiments: experiments.into_iter().map(|e| (e.id.clone(), Arc::new(e))).collect(),
            metrics,
            reads,
            read_by_any,
            cuped,
            webhooks: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// The catalog with the segments of its folder's `segments.toml`.
    pub fn with_segments(mut self, segments: Vec<Segment>) -> Self {
        self.segments = segments;
        self
    }

    /// The segments every test's results are broken down by.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The segment named `name`.
    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// The segments' names, as a refusal of an unknown one lists them:
    /// "device, customer", or "none".
    pub fn segment_names(&self) -> String {
        match self.segments.is_empty() {
            true => "none".to_owned(),
            false => self.segments.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        }
    }

    /// The catalog with the webhooks of its folder's `notify.toml`.
    pub fn with_webhooks(mut self, webhooks: Vec<Webhook>) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// The webhooks told when a test's verdict changes.
    pub fn webhooks(&self) -> &[Webhook] {
        &self.webhooks
    }

    /// The running tests `exp` could share a visitor with if it ran too (what
    /// would refuse setting a draft running), and how to keep them apart.
    pub fn would_overlap(&self, exp: &Experiment) -> Vec<(&ExperimentId, String)> {
        self.experiments()
            .filter(|r| r.status == Status::Running && r.id != exp.id)
            .filter(|r| conflicts::could_share_a_visitor(r, exp))
            .map(|r| (&r.id, conflicts::keep_apart(r)))
            .collect()
    }

    /// The metrics of `exp` with a CUPED covariate.
    pub fn cuped_metrics<'c>(&'c self, exp: &Experiment) -> impl Iterator<Item = &'c Metric> {
        self.cuped.get(&exp.id).into_iter().flatten().filter_map(|m| self.metrics.get(m.as_str()))
    }

    /// Whether any metric in the metrics file reads events named `event`
    /// (a name none reads is often a typo in the storefront).
    pub fn is_read(&self, event: &(impl AsRef<str> + ?Sized)) -> bool {
        self.read_by_any.contains(event.as_ref())
    }

    /// Whether any metric of `exp` reads events named `event`.
    pub fn reads(&self, exp: &Experiment, event: &(impl AsRef<str> + ?Sized)) -> bool {
        self.reads.get(&exp.id).is_some_and(|names| names.contains(event.as_ref()))
    }

    /// The test of that id (an [`ExperimentId`] or text from a request).
    pub fn get(&self, id: &(impl AsRef<str> + ?Sized)) -> Option<&Arc<Experiment>> {
        self.experiments.get(id.as_ref())
    }

    /// Experiments in id order.
    pub fn experiments(&self) -> impl Iterator<Item = &Arc<Experiment>> {
        self.experiments.values()
    }

    pub fn metric(&self, name: &(impl AsRef<str> + ?Sized)) -> Option<&Metric> {
        self.metrics.get(name.as_ref())
    }

    pub fn metrics(&self) -> &BTreeMap<MetricName, Metric> {
        &self.metrics
    }

    pub fn len(&self) -> usize {
        self.experiments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.experiments.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_is_in_unit_interval() {
        assert!(Weight::parse(0.0).is_ok() && Weight::parse(1.0).is_ok());
        assert!(Weight::parse(-0.1).is_err() && Weight::parse(f64::NAN).is_err());
    }

    #[test]
    fn targeting_matches_every_listed_attribute() {
        let t = Targeting(BTreeMap::from([
            ("device".to_string(), vec!["mobile".to_string()]),
            ("segment".to_string(), vec!["new".to_string(), "returning".to_string()]),
        ]));
        let mut a = Attributes::new();
        a.insert("device".into(), "mobile".into());
        assert!(!t.matches(&a));
        a.insert("segment".into(), "returning".into());
        assert!(t.matches(&a));
        let other = Targeting(BTreeMap::from([("device".to_string(), vec!["desktop".to_string()])]));
        assert!(t.disjoint_from(&other));
        assert!(!t.disjoint_from(&Targeting::default()));
    }
}
