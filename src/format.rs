//! Number formatting for every output (the verdict sentences, the HTML
//! report, the terminal report), so the same number reads the same
//! everywhere.

use crate::currency::{grouped, Currency};
use crate::experiment::Unit;

/// `0.1234` → `"12.3%"`.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// `0.1234` → `"+12.3%"`.
pub fn signed_pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// The confidence level `1 − alpha` as a percentage with the decimals it
/// needs: 0.05 → "95%", 0.025 → "97.5%", 0.001 → "99.9%" (never "100%").
pub fn level(alpha: f64) -> String {
    let level = (1.0 - alpha) * 100.0;
    (0..=6)
        .map(|d| format!("{level:.d$}%"))
        .find(|s| (s.trim_end_matches('%').parse::<f64>().unwrap_or(f64::NAN) - level).abs() <= 1e-9 * level)
        .unwrap_or_else(|| format!("{level}%"))
}

/// A probability as a marketer reads it: `0.934` → "93.4%", never "100.0%"
/// or "0.0%" for a chance that is only nearly certain.
pub fn chance(p: f64) -> String {
    if p > 0.999 {
        "> 99.9%".to_owned()
    } else if p < 0.001 {
        "< 0.1%".to_owned()
    } else {
        pct(p)
    }
}

/// A small relative loss: `0.00123` → "0.12%".
pub fn risk(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// `1` → "1 day", `12` → "12 days".
pub fn days(n: u64) -> String {
    if n == 1 {
        "1 day".to_owned()
    } else {
        format!("{} days", thousands(n))
    }
}

/// `39475` → `"39,475"`.
pub fn thousands(n: u64) -> String {
    grouped(n as f64, 0)
}

/// One of a metric's numbers as shown: a share as a percent (`0.077` →
/// "7.70%"), an amount with grouping and the shop's currency
/// ("€1,069,105.93", or "1,069,105.93" without one), a count with
/// grouping, anything else with two decimals.
pub fn in_unit(unit: Unit, currency: Option<Currency>, x: f64) -> String {
    match unit {
        Unit::Share => format!("{:.2}%", x * 100.0),
        Unit::Amount => match currency {
            Some(c) => c.amount(x),
            None if x < 0.0 => format!("-{}", grouped(-x, 2)),
            None => grouped(x, 2),
        },
        Unit::Count => grouped(x.max(0.0), 0),
        Unit::Number => format!("{x:.2}"),
    }
}

/// A change in a metric's unit, always signed: "+€0.42", "-1.50%".
pub fn signed_in_unit(unit: Unit, currency: Option<Currency>, x: f64) -> String {
    let shown = in_unit(unit, currency, x);
    if shown.starts_with('-') {
        shown
    } else {
        format!("+{shown}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_reads_as_itself() {
        let usd = Currency::parse("USD").ok();
        assert_eq!(in_unit(Unit::Share, usd, 0.077), "7.70%");
        assert_eq!(in_unit(Unit::Amount, usd, 864275.62), "$864,275.62");
        assert_eq!(in_unit(Unit::Amount, None, 1069105.934), "1,069,105.93");
        assert_eq!(in_unit(Unit::Amount, None, -2.5), "-2.50");
        assert_eq!(in_unit(Unit::Count, usd, 8592.0), "8,592");
        assert_eq!(in_unit(Unit::Number, usd, 0.1234), "0.12");
        assert_eq!(signed_in_unit(Unit::Amount, usd, 0.42), "+$0.42");
        assert_eq!(signed_in_unit(Unit::Amount, usd, -0.42), "-$0.42");
        assert_eq!(thousands(39475), "39,475");
    }
}
