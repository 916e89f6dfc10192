//! A simulated storefront: the traffic plan `offerlab simulate` plays
//! against a running offerlab, so a newcomer sees a live report in minutes
//! and end-to-end tests have realistic traffic. The plan is pure: it talks
//! to offerlab only through a [`Storefront`] (the command's is HTTP, in
//! the binary's `cli/simulate.rs`).
//!
//! Visitors arrive on a weekday pattern (weekends busier), walk a funnel
//! (product page → cart → checkout → order → post-purchase), are exposed to
//! the running tests on each surface they reach, accept each offer at the
//! rate their variant truly has (the test's baseline, times `1 + effect`
//! for a configured effect), order with skewed (log-normal) order values
//! and sometimes return items. Timestamps spread over the simulated days,
//! ending now, so business cycles complete. Optionally, some visitors are
//! returning customers with orders before their visit (`returning`), and
//! rare wholesale orders make order values heavy-tailed (`outliers`); both
//! draw from their own random stream, so without them a seed plays the
//! same storefront as ever.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration as Days, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::{json, Value};

use crate::experiment::Surface;
use crate::wire::v1::{AssignReply, BatchReply, ExperimentList, ListedExperiment, Status};

/// A true effect: `TEST:VARIANT:+0.15` multiplies that variant's offer
/// acceptance by 1.15; `TEST:VARIANT:-0.2@device=mobile` only for the
/// visitors of one segment value (effects on one variant multiply).
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub experiment: String,
    pub variant: String,
    pub lift: f64,
    /// The attribute and value of the visitors it applies to; every
    /// visitor when `None`.
    pub only: Option<(String, String)>,
}

/// The segment attributes the simulated storefront sends with every
/// visitor, and the values of each, with their shares: mobile is most of
/// the traffic, and most shoppers buy for the first time.
pub const VISITOR_ATTRIBUTES: [(&str, &[(&str, f64)]); 2] = [
    ("device", &[("mobile", 0.65), ("desktop", 0.35)]),
    ("customer_type", &[("first_time", 0.6), ("repeat", 0.3), ("high_value", 0.1)]),
];

impl std::str::FromStr for Effect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (effect, only) = match s.split_once('@') {
            None => (s, None),
            Some((effect, segment)) => (effect, Some(parse_only(s, segment)?)),
        };
        let parts: Vec<&str> = effect.split(':').collect();
        let [experiment, variant, lift] = parts.as_slice() else {
            return Err(format!("effect \"{s}\" is not TEST:VARIANT:LIFT, e.g. cart-protection-copy:benefit:+0.15 (or +0.15@device=mobile for one segment)"));
        };
        // A sign or a percent sign is required: a bare "25" could mean +25%
        // or +2,500%.
        let (number, scale) = match lift.strip_suffix('%') {
            Some(p) => (p, 0.01),
            None if lift.starts_with(['+', '-']) => (*lift, 1.0),
            None => {
                return Err(format!(
                    "effect \"{s}\": write the lift with a sign or a percent sign, e.g. +0.15 or +15% (\"{lift}\" is ambiguous)"
                ))
            }
        };
        let lift: f64 = number
            .parse::<f64>()
            .map(|x| x * scale)
            .map_err(|_| format!("effect \"{s}\": \"{lift}\" is not a lift such as +0.15 or +15%"))?;
        if lift <= -1.0 || !lift.is_finite() {
            return Err(format!("effect \"{s}\": a lift must be above -1 (-100%)"));
        }
        // "+25" is far more often a percent written without its sign than
        // a lift of +2,500%: above 1,000% only the percent sign says so.
        if scale == 1.0 && lift.abs() > 10.0 {
            return Err(format!(
                "effect \"{s}\": {number} would be a lift of {:+.0}%; write {number}% for {number} percent, or a fraction such as +0.25",
                lift * 100.0
            ));
        }
        Ok(Effect { experiment: experiment.to_string(), variant: variant.to_string(), lift, only })
    }
}

/// The `ATTRIBUTE=VALUE` after an effect's `@`: one of the attributes and
/// values the simulated storefront sends ([`VISITOR_ATTRIBUTES`]).
fn parse_only(effect: &str, segment: &str) -> Result<(String, String), String> {
    let known = || {
        VISITOR_ATTRIBUTES
            .iter()
            .map(|(a, values)| format!("{a}={}", values.iter().map(|(v, _)| *v).collect::<Vec<_>>().join("|")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = segment.split_once('=').and_then(|(a, v)| {
        let (_, values) = VISITOR_ATTRIBUTES.iter().find(|(name, _)| *name == a)?;
        values.iter().any(|(x, _)| *x == v).then(|| (a.to_owned(), v.to_owned()))
    });
    found.ok_or_else(|| {
        format!(
            "effect \"{effect}\": \"@{segment}\" is not a visitor segment the simulator sends; use one of {}",
            known()
        )
    })
}

/// One value of `values`, drawn by their shares.
fn draw<'a>(rng: &mut StdRng, values: &[(&'a str, f64)]) -> &'a str {
    let mut u: f64 = rng.random();
    for (v, share) in values {
        if u < *share {
            return v;
        }
        u -= share;
    }
    values.last().expect("a value").0
}

/// What to play: how many days and visitors, the seed, the true effects
/// and the optional kinds of visitor.
#[derive(Debug, Clone)]
pub struct Plan {
    pub days: u32,
    pub visitors_per_day: u32,
    pub seed: u64,
    pub effects: Vec<Effect>,
    /// Rare wholesale orders (heavy-tailed order values), to see what
    /// capping does: one ordering visitor in 200 adds an order of about
    /// 3,000 (log-normal), uncapped.
    pub outliers: bool,
    /// Share of visitors (0 to 1) who are returning customers: each has a
    /// spending propensity (log-normal with mean 1) and one to three orders
    /// in the 14 days before the visit, worth the usual order times the
    /// propensity; after the visit they order with probability
    /// `min(0.4·propensity, 0.95)` and spend in proportion to it, so CUPED
    /// has a pre-period to adjust with.
    pub returning: f64,
}

/// What the plan needs of the offerlab it plays against: the tests it
/// runs, each visitor's assignment, and batches of what visitors did.
pub trait Storefront {
    /// What a call fails with; a refused effect ([`BadEffect`]) is one.
    type Error: From<BadEffect>;
    /// The tests (`GET /api/v1/experiments`).
    fn tests(&mut self) -> Result<ExperimentList, Self::Error>;
    /// A test's variant keys, control first (from its report).
    fn variants(&mut self, test: &str) -> Result<Vec<String>, Self::Error>;
    /// One visitor's assignments (`POST /v1/assign`).
    fn assign(&mut self, body: &Value) -> Result<AssignReply<'static>, Self::Error>;
    /// A batch of exposures or events (`/v1/exposures`, `/v1/events`).
    fn send(&mut self, path: &str, items: &[Value]) -> Result<BatchReply, Self::Error>;
    /// Called when a simulated day is sent.
    fn day_done(&mut self) {}
}

/// An effect the server's tests cannot take, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadEffect(pub String);

/// Reads a share between 0 and 1 (`--returning`).
pub fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("\"{s}\" is not a share between 0 and 1, e.g. 0.4")),
    }
}

/// What a simulation sent and what became of it; the JSON line
/// `offerlab simulate --json` prints.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub visitors: u64,
    /// Exposures and events sent.
    pub exposures: u64,
    pub events: u64,
    /// Of those, stored now; already stored (a rerun of the same seed adds
    /// nothing); refused.
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// Checks each effect against the server's tests: the test must exist and
/// run, and have the variant.
fn check_effects<E: From<BadEffect>>(
    effects: &[Effect],
    list: &ExperimentList,
    mut variants_of: impl FnMut(&str) -> Result<Vec<String>, E>,
) -> Result<(), E> {
    let tests = &list.experiments;
    for e in effects {
        let Some(test) = tests.iter().find(|t| t.id == e.experiment) else {
            let known: Vec<&str> = tests.iter().map(|t| t.id.as_str()).collect();
            return Err(BadEffect(format!(
                "effect on unknown test \"{}\"; the server runs: {}",
                e.experiment,
                known.join(", ")
            ))
            .into());
        };
        if test.status != Status::Running {
            return Err(BadEffect(format!(
                "effect on \"{}\", which is {}: only running tests get visitors",
                e.experiment,
                crate::experiment::Status::from(test.status).as_str()
            ))
            .into());
        }
        let variants = variants_of(&e.experiment)?;
        let baseline = test.planned_baseline;
        if baseline * (1.0 + e.lift) > 1.0 {
            return Err(BadEffect(format!(
                "effect {:+.0}% on \"{}\" would take its acceptance from {:.1}% to {:.0}%, above 100%; choose a lift below {:+.0}%",
                e.lift * 100.0,
                e.experiment,
                baseline * 100.0,
                baseline * (1.0 + e.lift) * 100.0,
                (1.0 / baseline - 1.0) * 100.0
            )).into());
        }
        if !variants.contains(&e.variant) {
            return Err(BadEffect(format!(
                "test \"{}\" has no variant \"{}\"; use one of: {}",
                e.experiment,
                e.variant,
                variants.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

/// Share of each day's visitors, Monday first: weekends are busier.
const WEEKDAY_WEIGHT: [f64; 7] = [0.9, 0.9, 0.95, 1.0, 1.1, 1.35, 1.3];

/// The running tests of each surface with their baseline acceptance rate.
fn running_tests(list: &ExperimentList) -> Vec<(String, Surface, f64)> {
    list.experiments
        .iter()
        .filter(|e| e.status == Status::Running)
        .map(|e: &ListedExperiment| {
            // The configured baseline, not the observed one: the same seed
            // must play the same storefront, whatever is already stored.
            (e.id.clone(), e.surface.into(), e.planned_baseline.clamp(0.001, 0.9))
        })
        .collect()
}

/// Plays `sim` against `store`; `now` ends the last simulated day.
pub fn play<S: Storefront>(sim: &Plan, store: &mut S, now: DateTime<Utc>) -> Result<Summary, S::Error> {
    let list = store.tests()?;
    check_effects(&sim.effects, &list, |id| store.variants(id))?;
    let tests = running_tests(&list);
    let lift_of = |id: &str, variant: &str, attributes: &BTreeMap<&str, &str>| {
        sim.effects
            .iter()
            .filter(|e| e.experiment == id && e.variant == variant)
            .filter(|e| e.only.as_ref().is_none_or(|(a, v)| attributes.get(a.as_str()) == Some(&v.as_str())))
            .fold(1.0, |product, e| product * (1.0 + e.lift))
            - 1.0
    };

    let mut rng = StdRng::seed_from_u64(sim.seed);
    let mut extra = StdRng::seed_from_u64(sim.seed ^ 0x6f75_746c_6965_7273);
    // The customer type has a stream of its own, so adding it left every
    // seed's visitors, funnels and orders as they were.
    let mut customers = StdRng::seed_from_u64(sim.seed ^ 0x6375_7374_6f6d_6572);
    let order_value = LogNormal::new(60f64.ln(), 0.6).expect("valid log-normal");
    let propensity_of = LogNormal::new(-0.32, 0.8).expect("valid log-normal"); // mean 1
    let wholesale = LogNormal::new(3000f64.ln(), 0.5).expect("valid log-normal");
    let mut summary = Summary::default();
    let (mut exposures, mut events) = (Vec::new(), Vec::new());
    let first_day = now - Days::days(i64::from(sim.days.max(1)) - 1);
    for day in 0..sim.days {
        let date = first_day + Days::days(i64::from(day));
        let weight = WEEKDAY_WEIGHT[date.weekday().num_days_from_monday() as usize];
        let visitors = (f64::from(sim.visitors_per_day) * weight).round() as u32;
        let day_start = date.date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let day_end = if date.date_naive() == now.date_naive() { now } else { day_start + Days::days(1) };
        let span = (day_end - day_start).num_seconds().max(1);
        for i in 0..visitors {
            summary.visitors += 1;
            let visitor = format!("sim{}-d{day}-{i}", sim.seed);
            let arrived = day_start + Days::seconds(rng.random_range(0..span));
            let mobile = rng.random_bool(0.65);
            let attributes = BTreeMap::from([
                ("device", if mobile { "mobile" } else { "desktop" }),
                ("customer_type", draw(&mut customers, VISITOR_ATTRIBUTES[1].1)),
            ]);
            let assigned = store.assign(&json!({ "visitor_id": visitor, "attributes": attributes }))?;
            let variant_of: BTreeMap<String, (String, bool)> = assigned
                .assignments
                .into_iter()
                .map(|a| (a.experiment.into_owned(), (a.variant.into_owned(), a.in_experiment)))
                .collect();
            // The funnel: surfaces reached, in order, each a few minutes apart.
            let mut event_no = 0;
            let to_cart = rng.random_bool(0.45);
            let to_checkout = to_cart && rng.random_bool(0.6);
            let mut orders = to_checkout && rng.random_bool(0.7);
            let propensity = (sim.returning > 0.0 && extra.random_bool(sim.returning)).then(|| {
                let propensity = propensity_of.sample(&mut extra);
                for _ in 0..extra.random_range(1..=3) {
                    event_no += 1;
                    let before = arrived - Days::seconds(extra.random_range(3_600..14 * 86_400));
                    let value = order_value.sample(&mut extra) * propensity;
                    events.push(json!({ "id": format!("{visitor}-e{event_no}"), "visitor_id": visitor, "name": "order", "value": (value * 100.0).round() / 100.0, "ts": before.to_rfc3339() }));
                }
                orders = extra.random_bool((0.4 * propensity).min(0.95));
                propensity
            });
            let reached = |surface: Surface| match surface {
                Surface::ProductPage => true,
                Surface::Cart => to_cart,
                Surface::Checkout => to_checkout,
                Surface::PostPurchase | Surface::Email => orders,
            };
            let mut t = arrived;
            let mut upsell_value = 0.0;
            for (id, surface, baseline) in &tests {
                let Some((variant, true)) = variant_of.get(id) else {
                    continue;
                };
                if !reached(*surface) {
                    continue;
                }
                t = (t + Days::seconds(rng.random_range(30..300))).min(now);
                exposures.push(json!({ "visitor_id": visitor, "experiment": id, "variant": variant,
                                       "ts": t.to_rfc3339(), "attributes": attributes }));
                let lift = lift_of(id, variant, &attributes);
                if rng.random_bool((baseline * (1.0 + lift)).clamp(0.0, 1.0)) {
                    let price = rng.random_range(9.0..49.0_f64).round();
                    upsell_value += price;
                    let ts = (t + Days::seconds(rng.random_range(5..120))).min(now);
                    // The offer's own event, and the any-offer event.
                    for name in [format!("{}_offer_accepted", surface.as_str()), "upsell_accepted".to_owned()] {
                        event_no += 1;
                        events.push(json!({ "id": format!("{visitor}-e{event_no}"), "visitor_id": visitor, "name": name, "value": price, "ts": ts.to_rfc3339() }));
                    }
                }
            }
            if orders {
                event_no += 1;
                let mut value: f64 = (order_value.sample(&mut rng) + upsell_value).min(5_000.0);
                if let Some(p) = propensity {
                    value *= p;
                }
                if sim.outliers && extra.random_bool(0.005) {
                    value += wholesale.sample(&mut extra);
                }
                let ts = (t + Days::seconds(rng.random_range(60..900))).min(now);
                events.push(json!({ "id": format!("{visitor}-e{event_no}"), "visitor_id": visitor, "name": "order", "value": (value * 100.0).round() / 100.0, "ts": ts.to_rfc3339() }));
                if rng.random_bool(0.08) {
                    event_no += 1;
                    let back = (ts + Days::hours(rng.random_range(24..96))).min(now);
                    events.push(json!({ "id": format!("{visitor}-e{event_no}"), "visitor_id": visitor, "name": "return", "ts": back.to_rfc3339() }));
                }
            }
        }
        summary.exposures += exposures.len() as u64;
        summary.events += events.len() as u64;
        for (path, items) in [("/v1/exposures", &mut exposures), ("/v1/events", &mut events)] {
            for chunk in items.chunks(crate::tracking::MAX_BATCH) {
                let r = store.send(path, chunk)?;
                summary.accepted += r.accepted as u64;
                summary.duplicates += r.duplicates as u64;
                summary.rejected += r.rejected as u64;
            }
            items.clear();
        }
        store.day_done();
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Weekday;

    #[test]
    fn effects_parse_with_clear_errors() {
        let e: Effect = "cart-protection-copy:benefit:+0.15".parse().unwrap();
        assert_eq!((e.experiment.as_str(), e.variant.as_str(), e.lift), ("cart-protection-copy", "benefit", 0.15));
        assert_eq!(e.only, None);
        let mobile: Effect = "cart-protection-copy:benefit:-20%@device=mobile".parse().unwrap();
        assert!((mobile.lift + 0.2).abs() < 1e-12);
        assert_eq!(mobile.only, Some(("device".to_owned(), "mobile".to_owned())));
        for bad in ["a:b:+0.1@device=watch", "a:b:+0.1@browser=x", "a:b:+0.1@device"] {
            let said = bad.parse::<Effect>().unwrap_err();
            assert!(said.contains("device=mobile|desktop, customer_type=first_time|repeat|high_value"), "{said}");
        }
        assert!("a:b".parse::<Effect>().unwrap_err().contains("TEST:VARIANT:LIFT"));
        assert!("a:b:x".parse::<Effect>().unwrap_err().contains("with a sign or a percent sign"));
        assert!("a:b:+x".parse::<Effect>().unwrap_err().contains("not a lift"));
        assert!("a:b:-1.5".parse::<Effect>().is_err());
        let pct: Effect = "a:b:+25%".parse().unwrap();
        assert!((pct.lift - 0.25).abs() < 1e-12);
        for ambiguous in ["a:b:25", "a:b:0.25"] {
            assert!(ambiguous.parse::<Effect>().unwrap_err().contains("ambiguous"), "{ambiguous}");
        }
        let huge = "a:b:+25".parse::<Effect>().unwrap_err();
        assert!(huge.contains("+25 would be a lift of +2500%; write +25% for +25 percent"), "{huge}");
        assert!("a:b:+2500%".parse::<Effect>().is_ok(), "a percent sign says it is meant");
        assert!("a:b:+10".parse::<Effect>().is_ok(), "+1,000% is the largest bare lift");
    }

    fn listed(id: &str, status: Status) -> ListedExperiment {
        ListedExperiment {
            id: id.into(),
            name: id.into(),
            surface: crate::wire::v1::Surface::Cart,
            dimension: crate::wire::v1::Dimension::Copy,
            status,
            verdict: crate::wire::v1::report::Verdict {
                code: crate::wire::v1::VerdictCode::CollectingData,
                sentence: String::new(),
                winner: None,
            },
            sample_size: crate::wire::v1::report::SampleSize {
                per_variant: None,
                baseline: 0.04,
                baseline_observed: false,
                progress: None,
                reached: false,
                smallest_variant_visitors: 0,
                conversions: vec![0.0, 0.0],
                days_left: None,
            },
            days_running: 0,
            planned_baseline: 0.04,
            cycles_completed: 0,
        }
    }

    #[test]
    fn effects_must_name_a_running_test_and_one_of_its_variants() {
        let list =
            ExperimentList { experiments: vec![listed("cart", Status::Running), listed("draft-one", Status::Draft)] };
        let variants = |_: &str| vec!["control".to_owned(), "benefit".to_owned()];
        let check = |e: &str| {
            check_effects::<BadEffect>(&[e.parse().unwrap()], &list, |_| Ok(variants(""))).map_err(|e| e.to_string())
        };
        assert!(check("cart:benefit:+0.1").is_ok());
        assert!(check("crat:benefit:+0.1")
            .unwrap_err()
            .contains("unknown test \"crat\"; the server runs: cart, draft-one"));
        assert!(check("draft-one:benefit:+0.1").unwrap_err().contains("which is draft"));
        assert!(check("cart:benfit:+0.1").unwrap_err().contains("no variant \"benfit\"; use one of: control, benefit"));
        let over = check("cart:benefit:+3000%").unwrap_err();
        assert!(over.contains("from 4.0% to 124%, above 100%; choose a lift below +2400%"), "{over}");
    }

    #[test]
    fn weekends_are_busier() {
        let saturday = Weekday::Sat.num_days_from_monday() as usize;
        assert!(WEEKDAY_WEIGHT[saturday] > WEEKDAY_WEIGHT[0]);
    }

    /// A storefront in memory: one running cart test, whose visitors all
    /// see `benefit`; every batch is kept as sent and accepted.
    #[derive(Default)]
    struct Fake {
        sent: Vec<(String, Vec<Value>)>,
    }

    impl Storefront for Fake {
        type Error = BadEffect;
        fn tests(&mut self) -> Result<ExperimentList, BadEffect> {
            Ok(ExperimentList { experiments: vec![listed("cart", Status::Running)] })
        }
        fn variants(&mut self, _: &str) -> Result<Vec<String>, BadEffect> {
            Ok(vec!["control".into(), "benefit".into()])
        }
        fn assign(&mut self, body: &Value) -> Result<AssignReply<'static>, BadEffect> {
            let reply = json!({ "visitor_id": body["visitor_id"], "assignments": [{
                "experiment": "cart", "surface": "cart", "variant": "benefit", "payload": {},
                "in_experiment": true, "forced": false, "hash_value": 0.5 }] });
            Ok(serde_json::from_str(&reply.to_string()).expect("an assign reply"))
        }
        fn send(&mut self, path: &str, items: &[Value]) -> Result<BatchReply, BadEffect> {
            self.sent.push((path.to_owned(), items.to_vec()));
            Ok(BatchReply { accepted: items.len(), duplicates: 0, rejected: 0, results: Vec::new() })
        }
    }

    #[test]
    fn a_seed_plays_the_same_storefront_and_every_item_is_sent_once() {
        let now: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        let plan = Plan {
            days: 7,
            visitors_per_day: 200,
            seed: 3,
            effects: vec!["cart:benefit:+50%".parse().unwrap()],
            outliers: true,
            returning: 0.3,
        };
        let (mut first, mut again) = (Fake::default(), Fake::default());
        let summary = play(&plan, &mut first, now).unwrap();
        assert_eq!(play(&plan, &mut again, now).unwrap(), summary);
        assert_eq!(first.sent, again.sent, "the same seed sends the same items");

        let weights: u64 = (0..7)
            .map(|d| {
                let day = now - Days::days(6 - d);
                (200.0 * WEEKDAY_WEIGHT[day.weekday().num_days_from_monday() as usize]).round() as u64
            })
            .sum();
        assert_eq!(summary.visitors, weights);
        let items: Vec<&Value> = first.sent.iter().flat_map(|(_, items)| items).collect();
        assert_eq!(summary.exposures + summary.events, items.len() as u64);
        assert_eq!(summary.accepted, items.len() as u64);
        let exposures: Vec<&Value> =
            first.sent.iter().filter(|(p, _)| p == "/v1/exposures").flat_map(|(_, items)| items).collect();
        assert_eq!(exposures.len() as u64, summary.exposures);
        assert!(exposures.iter().all(|x| x["experiment"] == "cart" && x["variant"] == "benefit"));
        let ids: std::collections::BTreeSet<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
        assert_eq!(ids.len() as u64, summary.events, "every event has an id of its own");
        for item in items {
            let ts: DateTime<Utc> = item["ts"].as_str().unwrap().parse().unwrap();
            assert!(ts <= now, "nothing happens after now: {item}");
        }
    }
}
