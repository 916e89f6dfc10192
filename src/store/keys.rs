//! Every sled key offerlab writes, encoded and decoded in one place.
//!
//! Strings are separated by a 0 byte, which no stored string may hold
//! (ids, visitor ids and event names refuse control characters). Numbers
//! are fixed-width big-endian with the sign bit flipped, so byte order is
//! numeric order and a test's days scan in order.

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

fn i32_key(x: i32) -> [u8; 4] {
    ((x as u32) ^ (1 << 31)).to_be_bytes()
}

fn key_i32(b: [u8; 4]) -> i32 {
    (u32::from_be_bytes(b) ^ (1 << 31)) as i32
}

/// `exposures` and `visitor_events`: keyed by the visitor id itself.
pub fn visitor_key(visitor: &str) -> &[u8] {
    visitor.as_bytes()
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
        let t = TallyKey { experiment: "x".into(), phase: 1, visitor: "v-1 ü".into() };
        assert_eq!(TallyKey::decode(&t.encode()), Some(t));
        for day in [i32::MIN, -1, 0, 90, i32::MAX] {
            let a = AggregateKey { experiment: "x".into(), phase: 1, variant: 2, day, metric: "aov".into() };
            assert_eq!(AggregateKey::decode(&a.encode()), Some(a.clone()));
            assert!(a.encode().starts_with(&AggregateKey::prefix("x", 1)));
        }
        assert_eq!(TallyKey::decode(b"no separator"), None);
        assert_eq!(visitor_key("v-1"), b"v-1");
    }

    #[test]
    fn byte_order_is_day_order() {
        let d = |day| AggregateKey { experiment: "x".into(), phase: 1, variant: 0, day, metric: "m".into() }.encode();
        assert!(d(-2) < d(0) && d(0) < d(3));
    }

    #[test]
    fn a_test_prefix_does_not_match_a_longer_test_id() {
        let long = AggregateKey { experiment: "ab".into(), phase: 1, variant: 0, day: 0, metric: "m".into() }.encode();
        assert!(!long.starts_with(&AggregateKey::prefix("a", 1)));
    }
}
