//! Every sled key offerlab writes, encoded and decoded in one place.
//!
//! Strings are length-prefixed (two bytes, big-endian), so any string,
//! whatever bytes it holds, encodes and decodes unambiguously, and a
//! prefix for one test id never matches a longer id. Numbers are
//! fixed-width big-endian with the sign bit flipped, so byte order is
//! numeric order and a test's days scan in order.

use std::str::from_utf8;

use chrono::{Datelike, NaiveDate};

use crate::ids::{ExperimentId, MetricName, VariantIndex, VisitorId};
pub use crate::store::rules::{AggregateKey, CappedScope, CappedSide, SegmentKey, TallyKey};

fn push_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("key parts are at most 64 KiB (ids are validated far shorter)");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn take_str<'a>(bytes: &mut &'a [u8]) -> Option<&'a str> {
    let len = usize::from(u16::from_be_bytes(take(bytes)?));
    let s = from_utf8(bytes.get(..len)?).ok()?;
    *bytes = &bytes[len..];
    Some(s)
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let head: [u8; N] = bytes.get(..N)?.try_into().ok()?;
    *bytes = &bytes[N..];
    Some(head)
}

fn i32_key(x: i32) -> [u8; 4] {
    ((x as u32) ^ (1 << 31)).to_be_bytes()
}

fn key_i32(b: [u8; 4]) -> i32 {
    (u32::from_be_bytes(b) ^ (1 << 31)) as i32
}

/// `exposures`: keyed by the visitor id itself (the whole key).
pub fn visitor_key(visitor: &VisitorId) -> &[u8] {
    visitor.as_str().as_bytes()
}

/// `allocations` and `verdicts`: the test id of a key that is the id
/// itself.
pub fn experiment_of(key: &[u8]) -> Option<ExperimentId> {
    ExperimentId::parse(from_utf8(key).ok()?).ok()
}

/// `visitor_events`: one chunk of a visitor's events, in arrival order.
pub fn event_chunk_key(visitor: &VisitorId, chunk: u32) -> Vec<u8> {
    let visitor = visitor.as_str();
    let mut k = Vec::with_capacity(visitor.len() + 6);
    push_str(&mut k, visitor);
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// The visitor of a `visitor_events` key.
pub fn chunk_visitor(key: &[u8]) -> Option<VisitorId> {
    let mut b = key;
    VisitorId::parse(take_str(&mut b)?).ok()
}

/// The prefix of every `tallies` and `aggregates` key of one phase of one
/// test, so a test's phase scans by prefix.
pub fn phase_prefix(experiment: &ExperimentId, phase: u32) -> Vec<u8> {
    prefix_with_room(experiment, phase, 0)
}

/// [`phase_prefix`] in a vector with room for `rest` more bytes, so a key
/// built on it is allocated once.
fn prefix_with_room(experiment: &ExperimentId, phase: u32, rest: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + experiment.as_str().len() + 4 + rest);
    push_phase_prefix(&mut k, experiment, phase);
    k
}

fn push_phase_prefix(out: &mut Vec<u8>, experiment: &ExperimentId, phase: u32) {
    push_str(out, experiment.as_str());
    out.extend_from_slice(&phase.to_be_bytes());
}

/// `tallies`: one key per (test, phase, visitor).
impl TallyKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = prefix_with_room(&self.experiment, self.phase, 2 + self.visitor.as_str().len());
        push_str(&mut k, self.visitor.as_str());
        k
    }

    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let experiment = ExperimentId::parse(take_str(&mut b)?).ok()?;
        let phase = u32::from_be_bytes(take(&mut b)?);
        let visitor = VisitorId::parse(take_str(&mut b)?).ok()?;
        b.is_empty().then_some(TallyKey { experiment, phase, visitor })
    }
}

/// `aggregates`: one key per (test, phase, variant, date, metric), so a
/// test's phase scans by prefix and its days in order.
impl AggregateKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = Vec::new();
        self.encode_into(&mut k);
        k
    }

    /// Appends the key to `out`: the writer sums a group's changes by key
    /// in one reused buffer, and allocates a key only for a row it has not
    /// seen yet.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let metric = self.metric.as_str();
        out.reserve(2 + self.experiment.as_str().len() + 4 + 2 + 4 + 2 + metric.len());
        push_phase_prefix(out, &self.experiment, self.phase);
        out.extend_from_slice(&self.variant.to_be_bytes());
        out.extend_from_slice(&i32_key(self.date.num_days_from_ce()));
        push_str(out, metric);
    }

    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let experiment = ExperimentId::parse(take_str(&mut b)?).ok()?;
        let phase = u32::from_be_bytes(take(&mut b)?);
        let variant = VariantIndex::from_be_bytes(take(&mut b)?)?;
        let date = NaiveDate::from_num_days_from_ce_opt(key_i32(take(&mut b)?))?;
        let metric = MetricName::parse(take_str(&mut b)?).ok()?;
        b.is_empty().then_some(AggregateKey { experiment, phase, variant, date, metric })
    }
}

/// `segment_aggregates`: one key per (test, phase, attribute, value,
/// variant, metric), so a test's phase scans by prefix, an attribute's
/// values together.
impl SegmentKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = Vec::new();
        let row = (&self.experiment, self.phase, self.variant, &self.metric);
        Self::encode_parts_into(row, &self.attribute, &self.value, &mut k);
        k
    }

    /// Appends to `out` the key of [`SegmentKey::of`]`(row, attribute,
    /// value)`, without building it.
    pub fn encode_of_into(row: &AggregateKey, attribute: &str, value: &str, out: &mut Vec<u8>) {
        Self::encode_parts_into((&row.experiment, row.phase, row.variant, &row.metric), attribute, value, out);
    }

    fn encode_parts_into(
        (experiment, phase, variant, metric): (&ExperimentId, u32, VariantIndex, &MetricName),
        attribute: &str,
        value: &str,
        out: &mut Vec<u8>,
    ) {
        let metric = metric.as_str();
        out.reserve(2 + experiment.as_str().len() + 4 + 2 + attribute.len() + 2 + value.len() + 2 + 2 + metric.len());
        push_phase_prefix(out, experiment, phase);
        push_str(out, attribute);
        push_str(out, value);
        out.extend_from_slice(&variant.to_be_bytes());
        push_str(out, metric);
    }

    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let experiment = ExperimentId::parse(take_str(&mut b)?).ok()?;
        let phase = u32::from_be_bytes(take(&mut b)?);
        let attribute = take_str(&mut b)?.to_owned();
        let value = take_str(&mut b)?.to_owned();
        let variant = VariantIndex::from_be_bytes(take(&mut b)?)?;
        let metric = MetricName::parse(take_str(&mut b)?).ok()?;
        b.is_empty().then_some(SegmentKey { experiment, phase, attribute, value, variant, metric })
    }
}

/// An `f64` as 8 bytes whose byte order is its numeric order: the sign bit
/// flipped for a positive number, every bit for a negative one.
fn f64_key(x: f64) -> [u8; 8] {
    let bits = x.to_bits();
    (if bits >> 63 == 1 { !bits } else { bits ^ (1 << 63) }).to_be_bytes()
}

fn key_f64(b: [u8; 8]) -> f64 {
    let bits = u64::from_be_bytes(b);
    f64::from_bits(if bits >> 63 == 1 { bits ^ (1 << 63) } else { !bits })
}

/// `capped`: per (test, phase, metric), its counts under the scope and a
/// tag byte 0, and on each side (tag 1: value, 2: covariate) one key per
/// visitor, ordered by the side's value, so the visitors above a cap are a
/// scan from the end.
impl CappedScope {
    pub fn encode(&self) -> Vec<u8> {
        // Room for the tag byte of a side or the counts.
        let mut k = prefix_with_room(&self.experiment, self.phase, 2 + self.metric.as_str().len() + 1);
        push_str(&mut k, self.metric.as_str());
        k
    }

    /// The key of the scope's counts.
    pub fn counts_key(&self) -> Vec<u8> {
        let mut k = self.encode();
        k.push(0);
        k
    }

    /// The prefix of one side's entries.
    pub fn side_prefix(&self, side: CappedSide) -> Vec<u8> {
        let mut k = self.encode();
        k.push(match side {
            CappedSide::Value => 1,
            CappedSide::Covariate => 2,
        });
        k
    }

    /// A visitor's entry on one side, at `value`.
    pub fn entry_key(&self, side: CappedSide, value: f64, visitor: &VisitorId) -> Vec<u8> {
        let mut k = self.side_prefix(side);
        k.reserve(8 + 2 + visitor.as_str().len());
        k.extend_from_slice(&f64_key(value));
        push_str(&mut k, visitor.as_str());
        k
    }

    /// The scope of a `capped` key, its tag byte (0: counts; 1, 2: a side)
    /// and the rest.
    pub fn decode_key(mut b: &[u8]) -> Option<(CappedScope, u8, &[u8])> {
        let experiment = ExperimentId::parse(take_str(&mut b)?).ok()?;
        let phase = u32::from_be_bytes(take(&mut b)?);
        let metric = MetricName::parse(take_str(&mut b)?).ok()?;
        let [tag] = take(&mut b)?;
        Some((CappedScope { experiment, phase, metric }, tag, b))
    }

    /// The value and visitor of an entry's key, after its side's prefix.
    pub fn decode_entry(mut rest: &[u8]) -> Option<(f64, VisitorId)> {
        let value = key_f64(take(&mut rest)?);
        let visitor = VisitorId::parse(take_str(&mut rest)?).ok()?;
        rest.is_empty().then_some((value, visitor))
    }
}

/// A key shown in messages: its text quoted, with length prefixes and other
/// control bytes escaped (`"\0\u{5}alice\0\0\0\0"`), so the ids in it read.
pub fn describe(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_keys_sort_as_their_numbers() {
        let xs = [f64::NEG_INFINITY, -1e300, -2.5, -0.0, 0.0, f64::MIN_POSITIVE, 1.0, 30.0, 1e300, f64::INFINITY];
        for w in xs.windows(2) {
            assert!(f64_key(w[0]) <= f64_key(w[1]), "{} before {}", w[0], w[1]);
        }
        for x in xs {
            assert_eq!(key_f64(f64_key(x)).to_bits(), x.to_bits());
        }
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn key(experiment: &str, variant: usize, d: &str, metric: &str) -> AggregateKey {
        AggregateKey {
            experiment: experiment.parse().unwrap(),
            phase: 1,
            variant: VariantIndex::new(variant).unwrap(),
            date: date(d),
            metric: metric.parse().unwrap(),
        }
    }

    fn tally(experiment: &str, phase: u32, visitor: &str) -> TallyKey {
        TallyKey { experiment: experiment.parse().unwrap(), phase, visitor: visitor.parse().unwrap() }
    }

    #[test]
    fn keys_round_trip() {
        let t = tally("x", 1, "v-1 ü");
        assert_eq!(TallyKey::decode(&t.encode()), Some(t));
        for d in ["0001-01-01", "1969-12-31", "2026-11-02", "9999-12-31"] {
            let a = key("x", 2, d, "aov");
            assert_eq!(AggregateKey::decode(&a.encode()), Some(a.clone()));
            assert!(a.encode().starts_with(&phase_prefix(&a.experiment, 1)));
        }
        assert_eq!(TallyKey::decode(b"\x00\x09short"), None);
        assert_eq!(visitor_key(&"v-1".parse().unwrap()), b"v-1");
    }

    #[test]
    fn any_visitor_id_round_trips_and_a_key_holding_an_invalid_id_does_not_decode() {
        let t = tally("e", 7, "a\u{2028}b \" 🛒");
        assert_eq!(TallyKey::decode(&t.encode()), Some(t));
        let mut bad = phase_prefix(&"e".parse().unwrap(), 7);
        push_str(&mut bad, "v\0");
        assert_eq!(TallyKey::decode(&bad), None, "a visitor id with a control character is not one");
        let mut bad = key("e", 0, "2026-01-01", "m").encode();
        bad[7..9].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(AggregateKey::decode(&bad), None, "a variant beyond MAX_VARIANTS is not one");
    }

    #[test]
    fn byte_order_is_date_order() {
        let d = |s| key("x", 0, s, "m").encode();
        assert!(d("1999-12-31") < d("2026-11-01") && d("2026-11-01") < d("2026-11-02"));
    }

    #[test]
    fn a_test_prefix_does_not_match_a_longer_test_id() {
        let long = key("ab", 0, "2026-11-02", "m").encode();
        assert!(!long.starts_with(&phase_prefix(&"a".parse().unwrap(), 1)));
    }

    #[test]
    fn event_chunks_of_one_visitor_share_a_prefix_no_other_visitor_has() {
        let (v1, v10) = ("v1".parse().unwrap(), "v10".parse().unwrap());
        assert!(event_chunk_key(&v1, 3).starts_with(&event_chunk_key(&v1, 0)[..4]));
        assert!(!event_chunk_key(&v10, 0).starts_with(&event_chunk_key(&v1, 0)[..4]));
    }
}
