//! Hashing and bucket ranges, bit-compatible with GrowthBook's SDKs (hash
//! version 2): the one small pure module that both the definitions
//! ([`crate::experiment`], which lays out each test's ranges once at load)
//! and assignment ([`crate::assignment`]) build on.
//!
//! - [`fnv1a32`] hashes the UTF-16 code units of a string;
//! - [`hash`] turns a seed and a value into a number in `[0, 1)`;
//! - [`bucket_ranges`] lays the variants out on `[0, 1)`;
//! - [`choose_variant`] finds the range that holds the hash;
//! - [`in_namespace`] decides eligibility for mutually exclusive tests.

use serde::Serialize;

/// FNV-1a, 32 bits, over the UTF-16 code units of `s` (what JavaScript's
/// `charCodeAt` loop sees, so astral characters count as two units).
///
/// # Formula
/// `h = 0x811C9DC5`; for each unit `u`: `h = (h ^ u) * 16777619 mod 2^32`.
pub fn fnv1a32(s: &str) -> u32 {
    s.encode_utf16().fold(0x811C_9DC5_u32, |h, unit| (h ^ u32::from(unit)).wrapping_mul(16_777_619))
}

/// Which of GrowthBook's hashing schemes to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashVersion {
    /// `(fnv(value + seed) % 1000) / 1000`; still used for namespaces.
    V1,
    /// `(fnv(str(fnv(seed + value))) % 10000) / 10000`; the default, whose
    /// double hashing removes the correlation V1 shows between similar seeds.
    V2,
}

/// The visitor's position in `[0, 1)` for a given seed.
///
/// # Formula
/// - V1: `n = (fnv(value + seed) mod 1000) / 1000`
/// - V2: `n = (fnv(decimal(fnv(seed + value))) mod 10000) / 10000`
pub fn hash(seed: &str, value: &str, version: HashVersion) -> f64 {
    match version {
        HashVersion::V1 => {
            let h = fnv1a32(&format!("{value}{seed}"));
            f64::from(h % 1000) / 1000.0
        }
        HashVersion::V2 => {
            let inner = fnv1a32(&format!("{seed}{value}"));
            let h = fnv1a32(&inner.to_string());
            f64::from(h % 10_000) / 10_000.0
        }
    }
}

/// Equal weights for `n` variants, as GrowthBook's `getEqualWeights`.
pub fn equal_weights(n: usize) -> Vec<f64> {
    vec![1.0 / n as f64; n]
}

/// The weights bucketing actually uses: the given ones when there is one
/// finite, non-negative weight per variant and they sum to within
/// `[0.99, 1.01]`, equal weights otherwise (GrowthBook's rule; definitions
/// are held to a tighter sum at validation).
fn effective_weights(n: usize, weights: Option<&[f64]>) -> Vec<f64> {
    match weights {
        Some(w)
            if w.len() == n
                && w.iter().all(|x| x.is_finite() && *x >= 0.0)
                && (0.99..=1.01).contains(&w.iter().sum::<f64>()) =>
        {
            w.to_vec()
        }
        _ => equal_weights(n),
    }
}

/// One variant's share of `[0, 1)`: a visitor with `start <= n < end` gets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRange {
    pub start: f64,
    pub end: f64,
}

impl BucketRange {
    pub fn contains(&self, n: f64) -> bool {
        self.start <= n && n < self.end
    }
}

/// Lays `n` variants out on `[0, 1)`.
///
/// # Formula
/// Coverage `c` is clamped to `[0, 1]`; walking the variants with a
/// cumulative start `s_i = w_0 + ... + w_{i-1}`, variant `i` gets
/// `[s_i, s_i + c * w_i)`. Shrinking coverage therefore never moves a
/// visitor from one variant to another, it only leaves some out.
pub fn bucket_ranges(n: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<BucketRange> {
    let coverage = if coverage.is_nan() { 0.0 } else { coverage.clamp(0.0, 1.0) };
    let mut cumulative = 0.0;
    effective_weights(n, weights)
        .into_iter()
        .map(|w| {
            let start = cumulative;
            cumulative += w;
            BucketRange { start, end: start + coverage * w }
        })
        .collect()
}

/// The index of the first range that holds `n`, or `None` when the visitor
/// falls outside coverage.
pub fn choose_variant(n: f64, ranges: &[BucketRange]) -> Option<usize> {
    ranges.iter().position(|r| r.contains(n))
}

/// A mutual-exclusion group: tests that share a namespace id and take
/// disjoint ranges of it can never see the same visitor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Namespace {
    pub id: String,
    pub start: f64,
    pub end: f64,
}

impl Namespace {
    /// Whether two namespaces may hold a visitor in common: always, unless
    /// they are the same group and their ranges are disjoint.
    pub fn may_overlap(&self, other: &Namespace) -> bool {
        self.id != other.id || (self.start < other.end && other.start < self.end)
    }
}

/// Whether `value` falls into the namespace's range.
///
/// # Formula
/// `start <= hash("__" + id, value, V1) < end`
pub fn in_namespace(value: &str, ns: &Namespace) -> bool {
    let n = hash(&format!("__{}", ns.id), value, HashVersion::V1);
    ns.start <= n && n < ns.end
}
