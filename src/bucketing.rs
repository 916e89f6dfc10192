//! Hashing and bucket ranges, bit-compatible with GrowthBook's SDKs (hash
//! version 2): the one small pure module that both the definitions
//! ([`crate::experiment`], which lays out each test's ranges once at load)
//! and assignment ([`crate::assignment`]) build on.
//!
//! - [`Fnv`] hashes UTF-16 code units piece by piece, [`fnv1a32`] a string;
//! - [`hash`] turns a seed and a value into a number in `[0, 1)`;
//! - [`bucket_ranges`] lays the variants out on `[0, 1)`;
//! - [`choose_variant`] finds the range that holds the hash;
//! - [`in_namespace`] decides eligibility for mutually exclusive tests.

use serde::Serialize;

/// FNV-1a, 32 bits, over UTF-16 code units, fed piece by piece: a test's
/// seed is absorbed once at load, and a number is hashed from its decimal
/// digits on the stack, so hashing a visitor allocates nothing.
///
/// # Formula
/// `h = 0x811C9DC5`; for each unit `u`: `h = (h ^ u) * 16777619 mod 2^32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv(u32);

impl Fnv {
    pub const START: Fnv = Fnv(0x811C_9DC5);

    fn unit(h: u32, unit: u32) -> u32 {
        (h ^ unit).wrapping_mul(16_777_619)
    }

    /// Feeds the UTF-16 code units of `s` (what JavaScript's `charCodeAt`
    /// loop sees, so astral characters count as two units). ASCII bytes are
    /// their own units and go in one pass; from the first other byte (a
    /// character boundary, as everything before it is ASCII) the rest is
    /// encoded as UTF-16.
    pub fn text(self, s: &str) -> Fnv {
        let mut h = self.0;
        for (i, &b) in s.as_bytes().iter().enumerate() {
            if b >= 0x80 {
                return Fnv(s[i..].encode_utf16().fold(h, |h, u| Fnv::unit(h, u32::from(u))));
            }
            h = Fnv::unit(h, u32::from(b));
        }
        Fnv(h)
    }

    /// Feeds the decimal digits of `n`, as `String(n)` spells them.
    pub fn digits(self, mut n: u32) -> Fnv {
        let mut buf = [0u8; 10];
        let mut at = buf.len();
        loop {
            at -= 1;
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Fnv(buf[at..].iter().fold(self.0, |h, &d| Fnv::unit(h, u32::from(d))))
    }

    pub fn value(self) -> u32 {
        self.0
    }
}

/// FNV-1a, 32 bits, over the UTF-16 code units of `s`.
pub fn fnv1a32(s: &str) -> u32 {
    Fnv::START.text(s).value()
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
        HashVersion::V1 => v1_fraction(Fnv::START.text(value).text(seed)),
        HashVersion::V2 => hash_v2(Fnv::START.text(seed), value),
    }
}

/// Version 1's number from its hash: `(h mod 1000) / 1000`.
fn v1_fraction(h: Fnv) -> f64 {
    f64::from(h.value() % 1000) / 1000.0
}

/// [`hash`] version 2 with the seed already absorbed (`Fnv::START.text(seed)`).
pub fn hash_v2(seeded: Fnv, value: &str) -> f64 {
    let inner = seeded.text(value).value();
    f64::from(Fnv::START.digits(inner).value() % 10_000) / 10_000.0
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
    let n = v1_fraction(Fnv::START.text(value).text("__").text(&ns.id));
    ns.start <= n && n < ns.end
}
