//! The shop's currency (`currency = "EUR"` at the top of `metrics.toml`):
//! an ISO 4217 code, parsed once, that makes an amount read as money on
//! the page and in the terminal. The JSON report keeps raw numbers and
//! names the code beside them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ISO 4217 currency, known to the ISO list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// `"EUR"` → the euro; anything else than a known three-letter code is
    /// refused with a sentence that says what to write.
    pub fn parse(code: &str) -> Result<Currency, String> {
        iso_currency::Currency::from_code(code).map(Currency).ok_or_else(|| {
            let hint = if iso_currency::Currency::from_code(&code.to_ascii_uppercase()).is_some() {
                format!("; write it in capitals, \"{}\"", code.to_ascii_uppercase())
            } else {
                String::new()
            };
            format!(
                "currency \"{}\" is not an ISO 4217 code such as \"EUR\", \"USD\" or \"GBP\"{hint}",
                code.escape_debug()
            )
        })
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point: 2 for the euro, 0 for the yen.
    fn decimals(self) -> usize {
        usize::from(self.0.exponent().unwrap_or(2))
    }

    /// An amount with grouping and the currency: `1069105.934` →
    /// `"€1,069,105.93"`, `-3.5` → `"-$3.50"`; a currency without a sign
    /// of its own (or whose sign is letters) reads `"1,234.50 CHF"`.
    pub fn amount(self, x: f64) -> String {
        let number = grouped(x.abs(), self.decimals());
        let minus = if x < 0.0 && number.bytes().any(|b| (b'1'..=b'9').contains(&b)) { "-" } else { "" };
        let symbol = self.0.symbol().symbol;
        if symbol.is_empty() || symbol.chars().any(char::is_alphabetic) || symbol == "₣" {
            format!("{minus}{number} {}", self.code())
        } else {
            format!("{minus}{symbol}{number}")
        }
    }
}

/// `x` (not negative) with `decimals` digits and a comma every three
/// digits before the point: `1069105.934, 2` → `"1,069,105.93"`.
pub fn grouped(x: f64, decimals: usize) -> String {
    let text = format!("{x:.decimals$}");
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let mut out = String::with_capacity(text.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = fraction {
        out.push('.');
        out.push_str(f);
    }
    out
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_money() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(eur.amount(1069105.934), "€1,069,105.93");
        assert_eq!(eur.amount(0.0), "€0.00");
        assert_eq!(eur.amount(-3.5), "-€3.50");
        assert_eq!(eur.amount(-0.001), "€0.00", "no minus before a zero");
        assert_eq!(Currency::parse("USD").unwrap().amount(864275.62), "$864,275.62");
        assert_eq!(Currency::parse("JPY").unwrap().amount(1234.6), "¥1,235");
        assert_eq!(Currency::parse("CHF").unwrap().amount(1234.5), "1,234.50 CHF");
        assert_eq!(grouped(999.0, 0), "999");
        assert_eq!(grouped(1000.0, 0), "1,000");
        assert_eq!(grouped(123456.789, 1), "123,456.8");
    }

    #[test]
    fn a_code_that_is_not_iso_says_what_to_write() {
        assert!(Currency::parse("EURO").unwrap_err().contains("ISO 4217"));
        assert!(Currency::parse("eur").unwrap_err().contains("\"EUR\""));
        assert!(Currency::parse("XYZ").is_err());
        let parsed: Currency = serde_json::from_str("\"GBP\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"GBP\"");
    }
}
