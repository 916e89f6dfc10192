//! The shop's time zone, which decides the calendar day a visitor is filed
//! under: an IANA zone (`Europe/Berlin`, which follows daylight saving) or
//! a fixed UTC offset (`+01:00`, `UTC`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopZone {
    /// The same offset all year.
    Offset(FixedOffset),
    /// A zone of the IANA database: its offset changes with daylight saving.
    Named(chrono_tz::Tz),
}

impl ShopZone {
    /// UTC, the default, as the offset `+00:00`: stored allocation records
    /// name it so.
    pub const UTC: ShopZone = ShopZone::Offset(match FixedOffset::east_opt(0) {
        Some(o) => o,
        None => unreachable!(),
    });

    /// The shop's calendar day of an instant.
    pub fn local_day(&self, ts: DateTime<Utc>) -> NaiveDate {
        match self {
            ShopZone::Offset(o) => ts.with_timezone(o).date_naive(),
            ShopZone::Named(tz) => ts.with_timezone(tz).date_naive(),
        }
    }
}

/// The refusal of a zone, saying what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "timezone \"{0}\" is neither an IANA zone nor a UTC offset; write the shop's zone, e.g. \"Europe/Berlin\" or \"America/New_York\" (daylight saving included), or a fixed offset such as \"+01:00\" or \"UTC\""
)]
pub struct UnknownZone(pub String);

impl FromStr for ShopZone {
    type Err = UnknownZone;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with(['+', '-']) {
            // chrono's parser, held to offsets a shop can have.
            return FixedOffset::from_str(s)
                .ok()
                .filter(|o| o.local_minus_utc().abs() <= 14 * 3600)
                .map(ShopZone::Offset)
                .ok_or_else(|| UnknownZone(s.to_owned()));
        }
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(ShopZone::UTC);
        }
        chrono_tz::Tz::from_str(s).map(ShopZone::Named).map_err(|_| UnknownZone(s.to_owned()))
    }
}

/// As written in a definition: `Europe/Berlin`, `+01:00`, `UTC`.
impl fmt::Display for ShopZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShopZone::Offset(o) => write!(f, "{o}"),
            ShopZone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

impl serde::Serialize for ShopZone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_named_zone_follows_daylight_saving_and_an_offset_does_not() {
        let berlin: ShopZone = "Europe/Berlin".parse().unwrap();
        let fixed: ShopZone = "+01:00".parse().unwrap();
        // 22:30 UTC: 00:30 the next day in Berlin's summer (UTC+2), 23:30
        // the same day in its winter (UTC+1).
        assert_eq!(berlin.local_day(at("2026-07-01T22:30:00Z")).to_string(), "2026-07-02");
        assert_eq!(berlin.local_day(at("2026-12-01T22:30:00Z")).to_string(), "2026-12-01");
        assert_eq!(fixed.local_day(at("2026-07-01T22:30:00Z")).to_string(), "2026-07-01");
        assert_eq!(fixed.local_day(at("2026-12-01T23:30:00Z")).to_string(), "2026-12-02");
    }

    #[test]
    fn zones_parse_as_written_and_print_back() {
        for text in ["Europe/Berlin", "America/New_York", "+01:00", "-05:30", "+00:00"] {
            assert_eq!(text.parse::<ShopZone>().unwrap().to_string(), text);
        }
        assert_eq!("utc".parse::<ShopZone>().unwrap(), ShopZone::UTC);
        for bad in ["Europe/Berln", "+25:00", "1:00", "+01:60", ""] {
            let e = bad.parse::<ShopZone>().unwrap_err().to_string();
            assert!(e.contains("Europe/Berlin") && e.contains("+01:00"), "{bad}: {e}");
        }
    }
}
