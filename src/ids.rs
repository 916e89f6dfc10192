//! The names offerlab's records carry, each a type that is parsed once,
//! where it enters (a request, a TOML file, a stored record), and carried
//! as that type to the storage keys, so a visitor cannot stand where a test
//! is expected and nothing unchecked is stored:
//!
//! - [`VisitorId`]: the storefront's id of a visitor;
//! - [`ExperimentId`] and [`MetricName`]: slugs, 1 to 64 of `a-z`, `0-9`,
//!   `-` and `_`, safe in URLs, file names, keys, CSV and HTML alike;
//! - [`EventName`] and [`EventId`]: printable text as the events API takes it;
//! - [`VariantIndex`]: a variant's place in its test, the control first.
//!
//! Each serialises as its text (or number) and deserialises through its
//! parser, so a stored record that holds an invalid name does not decode
//! (the store reports it corrupt) instead of entering the analysis.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted visitor id, in bytes.
pub const MAX_VISITOR_ID_LEN: usize = 256;
/// Longest event id and event name, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 128;
pub const MAX_EVENT_NAME_LEN: usize = 64;
/// Most variants of one test: a variant's index is stored in two bytes
/// (PostgreSQL's `smallint`), and a test of more than a hundred arms
/// divides its alpha so finely that it cannot conclude.
pub const MAX_VARIANTS: usize = 100;

/// A text id: a `String` that only its parser builds.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, String> {
                $check(s)?;
                Ok($name(s.to_owned()))
            }

            /// [`Self::parse`] keeping the string it was given.
            pub fn parse_owned(s: String) -> Result<Self, String> {
                $check(&s)?;
                Ok($name(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// Lets a map keyed by these be searched by `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                $name::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $name::parse_owned(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_id!(
    /// A non-empty visitor id of at most [`MAX_VISITOR_ID_LEN`] bytes with no
    /// control characters.
    VisitorId,
    check_visitor_id
);

text_id!(
    /// An experiment's id, a slug ([`check_slug`]). It names the file and
    /// appears in URLs and storage keys.
    ExperimentId,
    check_experiment_id
);

text_id!(
    /// A metric's name in `metrics.toml`, a slug ([`check_slug`]).
    MetricName,
    check_metric_name
);

text_id!(
    /// The name of an event the storefront reports (`order`,
    /// `upsell_accepted`): 1 to [`MAX_EVENT_NAME_LEN`] bytes of printable
    /// text. A metric reads events by this name.
    EventName,
    check_event_name
);

text_id!(
    /// The storefront's id of one event, which makes a retry a duplicate:
    /// 1 to [`MAX_EVENT_ID_LEN`] bytes of printable text.
    EventId,
    check_event_id
);

fn check_visitor_id(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("visitor_id is empty; send the storefront's stable id for this visitor".into());
    }
    if s.len() > MAX_VISITOR_ID_LEN {
        return Err(format!("visitor_id is {} bytes long; at most {MAX_VISITOR_ID_LEN} are accepted", s.len()));
    }
    if s.chars().any(char::is_control) {
        return Err("visitor_id contains control characters; send a printable id".into());
    }
    Ok(())
}

/// Checks a name against the safe alphabet of ids and metric names: 1 to
/// 64 of `a-z`, `0-9`, `-` and `_`. Names in this alphabet are safe in
/// URLs, file names, storage keys, CSV and HTML alike.
pub fn check_slug(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 {
        return Err(format!("{what} \"{}\" must have 1 to 64 characters", s.escape_debug()));
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
        return Err(format!("{what} \"{}\" may only use lowercase letters, digits, '-' and '_'", s.escape_debug()));
    }
    Ok(())
}

fn check_experiment_id(s: &str) -> Result<(), String> {
    check_slug("id", s)
}

fn check_metric_name(s: &str) -> Result<(), String> {
    check_slug("metric name", s)
}

/// Printable text of 1 to `max` bytes: what the events API takes as an
/// event's `field`.
fn check_token(field: &str, s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(format!("{field} must be 1 to {max} bytes of printable text"));
    }
    Ok(())
}

fn check_event_name(s: &str) -> Result<(), String> {
    check_token("name", s, MAX_EVENT_NAME_LEN)
}

fn check_event_id(s: &str) -> Result<(), String> {
    check_token("id", s, MAX_EVENT_ID_LEN)
}

/// A variant's place in its test's `[[variants]]`: 0 is the control. Below
/// [`MAX_VARIANTS`], which the loader enforces, so it fits every store's
/// column; stored as a number and read back only through [`Self::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct VariantIndex(u16);

impl VariantIndex {
    pub const CONTROL: VariantIndex = VariantIndex(0);

    /// The index of the `i`-th variant, if a test may have that many.
    pub fn new(i: usize) -> Option<Self> {
        u16::try_from(i).ok().filter(|&i| usize::from(i) < MAX_VARIANTS).map(VariantIndex)
    }

    /// A stored index ([`Self::to_sql`]), if it is one.
    pub fn from_sql(i: i16) -> Option<Self> {
        usize::try_from(i).ok().and_then(Self::new)
    }

    pub fn get(self) -> usize {
        usize::from(self.0)
    }

    /// The index as PostgreSQL's `smallint`.
    pub fn to_sql(self) -> i16 {
        i16::try_from(self.0).expect("an index is below MAX_VARIANTS")
    }

    pub fn to_be_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    pub fn from_be_bytes(b: [u8; 2]) -> Option<Self> {
        Self::new(usize::from(u16::from_be_bytes(b)))
    }
}

impl<'de> Deserialize<'de> for VariantIndex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = u16::deserialize(d)?;
        Self::new(usize::from(i)).ok_or_else(|| {
            serde::de::Error::custom(format!("variant {i} is beyond the {MAX_VARIANTS} a test may have"))
        })
    }
}

impl fmt::Display for VariantIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_ids_and_metric_names_are_slugs() {
        assert!(ExperimentId::parse("cart-protection_copy2").is_ok());
        for bad in ["", "Cart", "a b", "a/b", &"x".repeat(65)] {
            assert!(ExperimentId::parse(bad).is_err(), "{bad}");
            assert!(MetricName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_printable_and_bounded() {
        assert!(EventName::parse("upsell accepted ü").is_ok());
        assert!(EventName::parse(&"x".repeat(65)).is_err());
        assert!(EventId::parse(&"x".repeat(128)).is_ok() && EventId::parse(&"x".repeat(129)).is_err());
        for bad in ["", "a\nb"] {
            assert!(EventName::parse(bad).is_err() && EventId::parse(bad).is_err() && VisitorId::parse(bad).is_err());
        }
        assert!(VisitorId::parse(&"v".repeat(257)).is_err());
    }

    #[test]
    fn a_stored_name_decodes_only_through_its_parser() {
        let id: ExperimentId = serde_json::from_str("\"cart-copy\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"cart-copy\"");
        assert!(serde_json::from_str::<ExperimentId>("\"Cart Copy\"").is_err());
        assert!(serde_json::from_str::<VisitorId>("\"\"").is_err());
        assert_eq!(serde_json::from_str::<VariantIndex>("2").unwrap(), VariantIndex::new(2).unwrap());
        assert!(serde_json::from_str::<VariantIndex>("100").is_err(), "beyond MAX_VARIANTS");
    }

    #[test]
    fn variant_indexes_stay_below_the_limit_in_every_encoding() {
        let last = VariantIndex::new(MAX_VARIANTS - 1).unwrap();
        assert_eq!(VariantIndex::from_sql(last.to_sql()), Some(last));
        assert_eq!(VariantIndex::from_be_bytes(last.to_be_bytes()), Some(last));
        assert_eq!(VariantIndex::new(MAX_VARIANTS), None);
        assert_eq!(VariantIndex::from_sql(-1), None, "a negative stored variant is not the control");
        assert_eq!(VariantIndex::from_be_bytes([0xff, 0xff]), None);
    }
}
