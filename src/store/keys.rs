//! Every sled key offerlab writes, encoded and decoded in one place.
//!
//! Strings are separated by a 0 byte, which no stored string may hold
//! (ids, visitor ids and event names refuse control characters). Numbers
//! are fixed-width big-endian with the sign bit flipped, so byte order is
//! numeric order and prefix scans return time-ordered keys.

use std::str::from_utf8;

const SEP: u8 = 0;

fn push_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(!s.as_bytes().contains(&SEP), "key part holds a 0 byte: {s:?}");
    out.extend_from_slice(s.as_bytes());
    out.push(SEP);
}

fn take_str<'a>(bytes: &mut &'a [u8]) -> Option<&'a str> {
    let end = bytes.iter().position(|&b| b == SEP)?;
    let s = from_utf8(&bytes[..end]).ok()?;
    *bytes = &bytes[end + 1..];
    Some(s)
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let head: [u8; N] = bytes.get(..N)?.try_into().ok()?;
    *bytes = &bytes[N..];
    Some(head)
}

fn i64_key(x: i64) -> [u8; 8] {
    ((x as u64) ^ (1 << 63)).to_be_bytes()
}

fn key_i64(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

fn i32_key(x: i32) -> [u8; 4] {
    ((x as u32) ^ (1 << 31)).to_be_bytes()
}

fn key_i32(b: [u8; 4]) -> i32 {
    (u32::from_be_bytes(b) ^ (1 << 31)) as i32
}

/// `exposures`: a visitor's first exposure to one phase of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposureKey {
    pub visitor: String,
    pub experiment: String,
    pub phase: u32,
}

impl ExposureKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = Self::visitor_prefix(&self.visitor);
        push_str(&mut k, &self.experiment);
        k.extend_from_slice(&self.phase.to_be_bytes());
        k
    }

    /// All of a visitor's exposures.
    pub fn visitor_prefix(visitor: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(visitor.len() + 40);
        push_str(&mut k, visitor);
        k
    }

    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let visitor = take_str(&mut b)?.to_owned();
        let experiment = take_str(&mut b)?.to_owned();
        let phase = u32::from_be_bytes(take(&mut b)?);
        b.is_empty().then_some(ExposureKey { visitor, experiment, phase })
    }
}

/// `visitor_events`: a visitor's events in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorEventKey {
    pub visitor: String,
    pub ts_millis: i64,
    pub id: String,
}

impl VisitorEventKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = ExposureKey::visitor_prefix(&self.visitor);
        k.extend_from_slice(&i64_key(self.ts_millis));
        push_str(&mut k, &self.id);
        k
    }

    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let visitor = take_str(&mut b)?.to_owned();
        let ts_millis = key_i64(take(&mut b)?);
        let id = take_str(&mut b)?.to_owned();
        b.is_empty().then_some(VisitorEventKey { visitor, ts_millis, id })
    }
}

/// `tallies`: a visitor's attributed events in one phase of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyKey {
    pub experiment: String,
    pub phase: u32,
    pub visitor: String,
}

impl TallyKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = Vec::new();
        push_str(&mut k, &self.experiment);
        k.extend_from_slice(&self.phase.to_be_bytes());
        push_str(&mut k, &self.visitor);
        k
    }

    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let experiment = take_str(&mut b)?.to_owned();
        let phase = u32::from_be_bytes(take(&mut b)?);
        let visitor = take_str(&mut b)?.to_owned();
        b.is_empty().then_some(TallyKey { experiment, phase, visitor })
    }
}

/// `aggregates`: one metric's sums for one variant and day of first
/// exposure, in one phase of one test.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AggregateKey {
    pub experiment: String,
    pub phase: u32,
    pub variant: u16,
    /// Days since the test's start.
    pub day: i32,
    pub metric: String,
}

impl AggregateKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = Self::prefix(&self.experiment, self.phase);
        k.extend_from_slice(&self.variant.to_be_bytes());
        k.extend_from_slice(&i32_key(self.day));
        push_str(&mut k, &self.metric);
        k
    }

    /// Every aggregate of one phase of one test.
    pub fn prefix(experiment: &str, phase: u32) -> Vec<u8> {
        let mut k = Vec::new();
        push_str(&mut k, experiment);
        k.extend_from_slice(&phase.to_be_bytes());
        k
    }

    pub fn decode(mut b: &[u8]) -> Option<Self> {
        let experiment = take_str(&mut b)?.to_owned();
        let phase = u32::from_be_bytes(take(&mut b)?);
        let variant = u16::from_be_bytes(take(&mut b)?);
        let day = key_i32(take(&mut b)?);
        let metric = take_str(&mut b)?.to_owned();
        b.is_empty().then_some(AggregateKey { experiment, phase, variant, day, metric })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let e = ExposureKey { visitor: "v-1 ü".into(), experiment: "cart-copy".into(), phase: 3 };
        assert_eq!(ExposureKey::decode(&e.encode()), Some(e.clone()));
        assert!(e.encode().starts_with(&ExposureKey::visitor_prefix("v-1 ü")));
        for ts_millis in [i64::MIN, -5, 0, 1_764_000_000_000, i64::MAX] {
            let v = VisitorEventKey { visitor: "v".into(), ts_millis, id: "ev-9".into() };
            assert_eq!(VisitorEventKey::decode(&v.encode()), Some(v));
        }
        let t = TallyKey { experiment: "x".into(), phase: 1, visitor: "v".into() };
        assert_eq!(TallyKey::decode(&t.encode()), Some(t));
        for day in [i32::MIN, -1, 0, 90, i32::MAX] {
            let a = AggregateKey { experiment: "x".into(), phase: 1, variant: 2, day, metric: "aov".into() };
            assert_eq!(AggregateKey::decode(&a.encode()), Some(a.clone()));
            assert!(a.encode().starts_with(&AggregateKey::prefix("x", 1)));
        }
        assert_eq!(ExposureKey::decode(b"no separator"), None);
    }

    #[test]
    fn byte_order_is_time_and_day_order() {
        let k = |ts| VisitorEventKey { visitor: "v".into(), ts_millis: ts, id: "a".into() }.encode();
        assert!(k(-10) < k(-1) && k(-1) < k(0) && k(0) < k(7));
        let d = |day| AggregateKey { experiment: "x".into(), phase: 1, variant: 0, day, metric: "m".into() }.encode();
        assert!(d(-2) < d(0) && d(0) < d(3));
    }

    #[test]
    fn a_visitor_prefix_does_not_match_a_longer_visitor() {
        let long = ExposureKey { visitor: "ab".into(), experiment: "x".into(), phase: 1 }.encode();
        assert!(!long.starts_with(&ExposureKey::visitor_prefix("a")));
    }
}
