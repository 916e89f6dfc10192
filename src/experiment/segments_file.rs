//! `segments.toml`: the visitor attributes every test's results are broken
//! down by (device, customer type), parsed into [`Segment`]s. The file is
//! optional; without it no attribute is kept and no breakdown is shown.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use super::errors::{FileErrors, ValidationError};
use crate::assignment::Attributes;
use crate::ids::check_slug;

/// The file that defines the segments, inside the experiments folder.
pub const SEGMENTS_FILE: &str = "segments.toml";

/// Most segments one folder defines: each keeps a value per exposure and
/// multiplies the comparisons a breakdown makes.
pub const MAX_SEGMENTS: usize = 4;

/// Most values one segment lists; the rest fall in [`OTHER`].
pub const MAX_VALUES: usize = 12;

/// Bytes of an attribute's value an exposure keeps (cut on a character
/// boundary): enough for any device, channel or customer type, and a bound
/// on what a storefront can make offerlab store per visitor.
pub const MAX_KEPT_BYTES: usize = 64;

/// The value shown for an attribute value the file does not list.
pub const OTHER: &str = "(other)";

/// The value shown for a visitor whose exposure did not carry the attribute.
pub const NONE: &str = "(none)";

/// The attribute no segment may read besides a test's hash attribute: it
/// is one value per visitor, so each "segment" would hold one visitor.
const VISITOR_ID: &str = "visitor_id";

/// One way to break results down: the attribute it reads and the values
/// it shows one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// A slug, as a test's id or a metric's name: it appears in URLs
    /// (`/segments`) and on the command line (`--by device`).
    pub name: String,
    pub attribute: String,
    pub values: Vec<String>,
}

impl Segment {
    /// The value a visitor falls in, from the raw value their first
    /// exposure kept: a listed value, [`OTHER`] or [`NONE`].
    pub fn value_of<'a>(&'a self, raw: Option<&str>) -> &'a str {
        match raw {
            None => NONE,
            Some(raw) => self.values.iter().find(|v| v.as_str() == raw).map_or(OTHER, String::as_str),
        }
    }

    /// Every value a breakdown shows, in order: the listed ones, then
    /// [`OTHER`] and [`NONE`].
    pub fn all_values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(String::as_str).chain([OTHER, NONE])
    }
}

/// The raw values of `attributes` that `segments` read, each cut to
/// [`MAX_KEPT_BYTES`] on a character boundary: what a first exposure keeps.
pub fn kept(segments: &[Segment], attributes: &Attributes) -> BTreeMap<String, String> {
    segments.iter().filter_map(|s| Some((s.attribute.clone(), cut(attributes.get(&s.attribute)?).to_owned()))).collect()
}

/// The longest prefix of `s` of at most [`MAX_KEPT_BYTES`] bytes that ends
/// on a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_KEPT_BYTES {
        return s;
    }
    let end = (0..=MAX_KEPT_BYTES).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    &s[..end]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSegment {
    attribute: Option<Spanned<String>>,
    values: Spanned<Vec<String>>,
}

/// Parses `segments.toml`; `hash_attributes` are the attributes the tests
/// hash on, which no segment may read.
pub fn parse_segments(
    file: &str,
    text: &str,
    hash_attributes: &BTreeSet<&str>,
) -> Result<Vec<Segment>, Vec<ValidationError>> {
    let mut errs = FileErrors::new(file, text);
    let raw: BTreeMap<Spanned<String>, Spanned<RawSegment>> = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            errs.toml(e);
            return Err(errs.errors);
        }
    };
    let mut raw: Vec<(Spanned<String>, Spanned<RawSegment>)> = raw.into_iter().collect();
    raw.sort_by_key(|(name, _)| name.span().start);
    let mut segments = Vec::new();
    for (i, (name, seg)) in raw.into_iter().enumerate() {
        let span = name.span();
        let name = name.into_inner();
        let seg = seg.into_inner();
        if i == MAX_SEGMENTS {
            errs.at(
                span.clone(),
                format!("segment \"{name}\" is one too many: at most {MAX_SEGMENTS} segments; remove the ones least worth a breakdown"),
            );
        }
        if let Err(m) = check_slug("segment name", &name) {
            errs.at(span.clone(), format!("{m}, e.g. \"device\": the name appears in URLs and in `--by`"));
        }
        let (attribute, attribute_span) = match &seg.attribute {
            Some(a) => (a.get_ref().clone(), a.span()),
            None => (name.clone(), span.clone()),
        };
        if attribute.is_empty() {
            errs.at(
                attribute_span.clone(),
                format!("segment \"{name}\": attribute is empty; name the visitor attribute it reads, e.g. \"device\""),
            );
        } else if attribute == VISITOR_ID || hash_attributes.contains(attribute.as_str()) {
            errs.at(
                attribute_span.clone(),
                format!("segment \"{name}\": \"{attribute}\" identifies the visitor (tests hash on it), so each value would hold one visitor; read an attribute many visitors share, e.g. \"device\""),
            );
        }
        let values = seg.values.get_ref();
        let values_span = seg.values.span();
        if values.is_empty() {
            errs.at(values_span.clone(), format!("segment \"{name}\": values is empty; list the values to show one by one, e.g. values = [\"mobile\", \"desktop\"]"));
        }
        if values.len() > MAX_VALUES {
            errs.at(
                values_span.clone(),
                format!("segment \"{name}\" lists {} values; at most {MAX_VALUES} (the rest are shown together as \"{OTHER}\")", values.len()),
            );
        }
        let mut seen = BTreeSet::new();
        for v in values {
            if !seen.insert(v.as_str()) {
                errs.at(
                    values_span.clone(),
                    format!("segment \"{name}\": value \"{v}\" is listed twice; list each value once"),
                );
            } else if v.is_empty() || v.len() > MAX_KEPT_BYTES || v.chars().any(char::is_control) {
                errs.at(
                    values_span.clone(),
                    format!("segment \"{name}\": value {v:?} must be 1 to {MAX_KEPT_BYTES} bytes of printable text (exposures keep that much of an attribute)"),
                );
            } else if v == OTHER || v == NONE {
                errs.at(
                    values_span.clone(),
                    format!("segment \"{name}\": \"{v}\" is what offerlab shows for values not listed or missing; list only real values"),
                );
            }
        }
        segments.push(Segment { name, attribute, values: values.clone() });
    }
    errs.finish(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Segment>, Vec<String>> {
        parse_segments("segments.toml", text, &BTreeSet::from(["visitor_id", "customer_id"]))
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn segments_parse_in_file_order_with_the_name_as_default_attribute() {
        let s = parse(
            r#"
[device]
values = ["mobile", "desktop", "tablet"]
[customer]
attribute = "customer_type"
values = ["first_time", "repeat", "high_value"]
"#,
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].name.as_str(), s[0].attribute.as_str()), ("device", "device"));
        assert_eq!((s[1].name.as_str(), s[1].attribute.as_str()), ("customer", "customer_type"));
        assert_eq!(s[0].value_of(Some("mobile")), "mobile");
        assert_eq!(s[0].value_of(Some("watch")), OTHER);
        assert_eq!(s[0].value_of(None), NONE);
        assert_eq!(s[0].all_values().collect::<Vec<_>>(), ["mobile", "desktop", "tablet", OTHER, NONE]);
    }

    #[test]
    fn every_mistake_is_named_at_its_line() {
        let said = parse(
            r#"
[device]
values = []
[Bad-Name]
attribute = "customer_id"
values = ["a", "a"]
[who]
attribute = "visitor_id"
values = ["x", "(other)"]
"#,
        )
        .unwrap_err();
        assert_eq!(said.len(), 6, "{said:#?}");
        assert!(said[0].starts_with("segments.toml:3:") && said[0].contains("values is empty"), "{said:#?}");
        assert!(said[1].starts_with("segments.toml:4:") && said[1].contains("lowercase"), "{said:#?}");
        assert!(said[2].starts_with("segments.toml:5:") && said[2].contains("identifies the visitor"), "{said:#?}");
        assert!(said[3].starts_with("segments.toml:6:") && said[3].contains("listed twice"), "{said:#?}");
        assert!(said[4].starts_with("segments.toml:8:") && said[4].contains("identifies the visitor"), "{said:#?}");
        assert!(said[5].starts_with("segments.toml:9:") && said[5].contains("not listed or missing"), "{said:#?}");
    }

    #[test]
    fn at_most_four_segments_and_twelve_values() {
        let mut text = String::new();
        for name in ["a", "b", "c", "d", "e"] {
            text.push_str(&format!("[{name}]\nvalues = [\"x\"]\n"));
        }
        let said = parse(&text).unwrap_err();
        assert!(
            said.len() == 1 && said[0].starts_with("segments.toml:9:") && said[0].contains("at most 4"),
            "{said:?}"
        );
        let values: Vec<String> = (0..13).map(|i| format!("\"v{i}\"")).collect();
        let said = parse(&format!("[device]\nvalues = [{}]\n", values.join(", "))).unwrap_err();
        assert!(said.len() == 1 && said[0].contains("at most 12"), "{said:?}");
        let said = parse("[device]\nvalues = [\"x\"]\ncolour = 1\n").unwrap_err();
        assert!(said[0].contains("unknown field"), "{said:?}");
    }

    #[test]
    fn exposures_keep_at_most_64_bytes_cut_on_a_character_boundary() {
        let segments = parse(
            "[device]\nvalues = [\"mobile\"]\n[customer]\nattribute = \"customer_type\"\nvalues = [\"repeat\"]\n",
        )
        .unwrap();
        let long = "é".repeat(40); // 80 bytes, 2 each
        let attributes = Attributes::from([("device".to_string(), long), ("country".to_string(), "de".to_string())]);
        let kept = kept(&segments, &attributes);
        assert_eq!(kept.len(), 1, "only segment attributes are kept: {kept:?}");
        assert_eq!(kept["device"], "é".repeat(32));
        let odd = format!("a{}", "é".repeat(40)); // a boundary falls at 63
        assert_eq!(cut(&odd).len(), 63);
    }
}
