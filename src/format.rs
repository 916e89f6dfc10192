//! Number formatting for every output (the verdict sentences, the HTML
//! report, the terminal report), so the same number reads the same
//! everywhere.

use crate::experiment::Shape;

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
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A metric's value as shown: a percentage for a proportion, three
/// decimals for a rate, two otherwise.
pub fn format_value(shape: Shape, name: &str, x: f64) -> String {
    match shape {
        Shape::Proportion => format!("{:.2}%", x * 100.0),
        _ if name.contains("rate") => format!("{:.3}", x),
        _ => format!("{:.2}", x),
    }
}
