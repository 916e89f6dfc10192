//! Version 1 of the replies: `POST|GET /v1/assign`, `POST /v1/exposures`
//! and `/v1/events`, `GET /api/v1/experiments` and (in [`report`])
//! `GET /api/v1/experiments/{id}/report`. `tests/wire/` holds one committed
//! example of each, which a test compares with what the server writes.

pub mod report;
pub mod segments;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use report::Report;
pub use segments::Segments;

/// Declares a wire enum that mirrors a domain enum variant by variant, and
/// the conversions both ways (a reader of a reply speaks the domain's
/// words): renaming a domain variant fails to compile here instead of
/// renaming a string on the wire.
macro_rules! mirror {
    ($(#[$meta:meta])* $name:ident from $domain:ty { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl From<$domain> for $name {
            fn from(d: $domain) -> Self {
                match d {
                    $(<$domain>::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $domain {
            fn from(w: $name) -> Self {
                match w {
                    $($name::$variant => <$domain>::$variant),+
                }
            }
        }
    };
}
pub(crate) use mirror;

mirror!(
    /// Where an offer is shown.
    Surface from crate::experiment::Surface { ProductPage, Cart, Checkout, PostPurchase, Email }
);
mirror!(
    /// What a test varies.
    Dimension from crate::experiment::Dimension { Placement, Copy, PricingDisplay, OfferCount, Bundle }
);
mirror!(
    /// A test's life stage.
    Status from crate::experiment::Status { Draft, Running, Paused, Concluded }
);
mirror!(
    /// What the report says to do, in one code.
    VerdictCode from crate::analysis::VerdictCode {
        CollectingData,
        SampleRatioMismatch,
        NoDetectableDifference,
        WinnerValidating,
        ValidatedWinner,
        GuardrailHarmed,
        InconsistentAcrossCycles,
    }
);

/// The `/v1/assign` reply: every matching test's variant for one visitor.
///
/// The fixed part of each assignment (test, surface, variant, payload) is
/// borrowed from the loaded catalog, the payload as the JSON text it was
/// written out to at load, so a request serialises only what is its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignReply<'a> {
    pub visitor_id: Cow<'a, str>,
    pub assignments: Vec<Assignment<'a>>,
}

/// One test's variant for the visitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment<'a> {
    pub experiment: Cow<'a, str>,
    pub surface: Surface,
    pub variant: Cow<'a, str>,
    /// What the storefront renders, as the test's TOML gave it.
    pub payload: Cow<'a, RawValue>,
    /// False when the visitor is outside the test's coverage or targeting
    /// (they get the control and are not counted).
    pub in_experiment: bool,
    /// The variant came from `force`, not from the hash.
    pub forced: bool,
    /// The visitor's position in `[0, 1)`; absent when forced or excluded.
    pub hash_value: Option<f64>,
}

impl PartialEq for Assignment<'_> {
    /// Payloads compare as JSON text: the reply writes the text it was given.
    fn eq(&self, other: &Self) -> bool {
        (&self.experiment, self.surface, &self.variant, self.payload.get(), self.in_experiment, self.forced)
            == (
                &other.experiment,
                other.surface,
                &other.variant,
                other.payload.get(),
                other.in_experiment,
                other.forced,
            )
            && self.hash_value == other.hash_value
    }
}

impl<'c> From<&crate::assignment::AssignedVariant<'c>> for Assignment<'c> {
    fn from(a: &crate::assignment::AssignedVariant<'c>) -> Self {
        let v = a.variant();
        Assignment {
            experiment: Cow::Borrowed(a.exp.id.as_str()),
            surface: a.exp.surface.into(),
            variant: Cow::Borrowed(&v.key),
            payload: Cow::Borrowed(&v.payload_json),
            in_experiment: a.in_experiment,
            forced: a.forced,
            hash_value: a.hash_value,
        }
    }
}

impl<'c> AssignReply<'c> {
    /// The reply for `visitor_id`, borrowing from the catalog the
    /// assignments came from.
    pub fn new(visitor_id: &'c str, assignments: &[crate::assignment::AssignedVariant<'c>]) -> Self {
        AssignReply { visitor_id: Cow::Borrowed(visitor_id), assignments: assignments.iter().map(Into::into).collect() }
    }

    /// Writes the reply for `visitor_id` to `out`: byte for byte what
    /// serialising [`AssignReply::new`] writes, without escaping the fixed
    /// part of every assignment on every request. That part (test, surface,
    /// variant, payload) is the [`Assignment`] serialiser's own output, up
    /// to its first per-visitor field, kept per variant on first use; the
    /// request writes only the visitor's id and each `in_experiment`,
    /// `forced` and `hash_value`. (Escaping the fixed part per request cost
    /// 8,500 instructions of 48,000, a fifth of `/v1/assign`'s throughput:
    /// BENCHMARKS.md.) A test holds it to the serialiser.
    pub fn write(visitor_id: &str, assignments: &[crate::assignment::AssignedVariant<'_>], out: &mut Vec<u8>) {
        let flag = |b: bool| if b { "true" } else { "false" };
        out.extend_from_slice(b"{\"visitor_id\":");
        serde_json::to_writer(&mut *out, visitor_id).expect("a string serialises");
        out.extend_from_slice(b",\"assignments\":[");
        for (i, a) in assignments.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(reply_head(a).as_bytes());
            out.extend_from_slice(b",\"in_experiment\":");
            out.extend_from_slice(flag(a.in_experiment).as_bytes());
            out.extend_from_slice(b",\"forced\":");
            out.extend_from_slice(flag(a.forced).as_bytes());
            out.extend_from_slice(b",\"hash_value\":");
            serde_json::to_writer(&mut *out, &a.hash_value).expect("a number serialises");
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }
}

/// An assignment's JSON up to its first per-visitor field, as the
/// serialiser of [`Assignment`] writes it (the per-visitor fields come
/// last, so the head is the text before the last `,"in_experiment":`; a
/// payload key of that name comes earlier and is kept whole).
fn reply_head<'a>(a: &crate::assignment::AssignedVariant<'a>) -> &'a str {
    a.variant().reply_head.get_or_init(|| {
        let whole = serde_json::to_string(&Assignment::from(a)).expect("an assignment serialises");
        let cut = whole.rfind(",\"in_experiment\":").expect("an assignment has in_experiment");
        whole[..cut].into()
    })
}

/// The reply to one tracked item (an object body), or to each item of a
/// batch that was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemStatus {
    pub status: Stored,
}

/// A tracked item that was checked and is on disk: stored now, or stored
/// before (a retry). An id stored for another item is refused instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    Accepted,
    Duplicate,
}

/// The reply to a batch: counts, and each item's fate in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReply {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<BatchItem>,
}

/// One item of a batch: stored (or already stored), or refused and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchItem {
    Refused(Refusal),
    Stored(ItemStatus),
}

/// A refused item: `status` is always `"rejected"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub status: Rejected,
    /// A stable machine code (`unknown_experiment`, `duplicate_id`, …).
    pub code: Cow<'static, str>,
    /// What to fix, in a sentence.
    pub message: String,
    /// The item's field at fault, when one is.
    pub field: Option<String>,
}

/// The one status a refused item has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejected {
    Rejected,
}

/// `GET /api/v1/experiments`: every test with its verdict and progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentList {
    pub experiments: Vec<ListedExperiment>,
}

/// One test in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedExperiment {
    pub id: String,
    pub name: String,
    pub surface: Surface,
    pub dimension: Dimension,
    pub status: Status,
    pub verdict: report::Verdict,
    pub sample_size: report::SampleSize,
    pub days_running: i64,
    /// The primary metric's expected control value from the test's TOML.
    pub planned_baseline: f64,
    pub cycles_completed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::{assign_all, AssignQuery};
    use crate::experiment::load_dir;

    /// The fast writer is the serialiser, byte for byte: for every
    /// committed test, in and out of the test, forced, excluded, and for a
    /// payload with keys named like the per-visitor fields.
    #[test]
    fn the_assign_reply_writer_writes_what_the_serialiser_writes() {
        let dir = tempfile::tempdir().unwrap();
        let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");
        for entry in std::fs::read_dir(committed).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("cart-protection-copy.toml")).unwrap().replace(
            "style = \"benefit\" }",
            "style = \"benefit\", in_experiment = \"x\\\"y\", nested = { forced = true, hash_value = 1 } }",
        );
        std::fs::write(dir.path().join("cart-protection-copy.toml"), text).unwrap();
        let catalog = load_dir(dir.path()).unwrap();
        let mut replies = 0;
        for i in 0..300 {
            let visitor = format!("v-{i} \"ü\"");
            let mut q = AssignQuery::new(visitor.parse().unwrap());
            match i % 3 {
                0 => {
                    q.attributes.insert("device".into(), "mobile".into());
                }
                1 => {
                    q.force.insert("cart-protection-copy".into(), "benefit".into());
                }
                _ => {}
            }
            let assignments = assign_all(&catalog, &q).unwrap();
            let mut fast = Vec::new();
            AssignReply::write(&visitor, &assignments, &mut fast);
            let serialised = serde_json::to_vec(&AssignReply::new(&visitor, &assignments)).unwrap();
            assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(serialised).unwrap());
            replies += 1;
        }
        assert_eq!(replies, 300);
    }
}
