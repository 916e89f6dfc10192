//! Results by segment, black-box: exposures and events with a `device`
//! attribute sent to a real server, then `GET .../segments` read back.
//! The data is built visitor by visitor from the deterministic assignment
//! (no random draws), so every figure asserted here is fixed.

mod common;

use std::path::Path;

use common::postgres::Postgres;
use common::{serve_postgres_with, spawn_server_with, AT_NOW, EXPERIMENTS};
use offerlab::assignment::{evaluate, Attributes};
use offerlab::experiment::load_dir;
use serde_json::{json, Value};

const TEST: &str = "cart-protection-copy";

/// One visitor of the fixture: device, variant, whether they converted.
struct Visitor {
    id: String,
    device: &'static str,
    variant: usize,
    /// Place among the visitors of the same device and variant.
    rank: usize,
    converts: bool,
}

/// `per_arm` visitors in each (device, variant), found by hashing ids in
/// turn; `rate(device, variant)` of each arm convert (the first of them).
fn visitors(per_arm: usize, rate: impl Fn(&str, usize) -> f64) -> Vec<Visitor> {
    let catalog = load_dir(Path::new(EXPERIMENTS)).unwrap();
    let exp = catalog.get(TEST).unwrap();
    let mut out = Vec::new();
    for device in ["mobile", "desktop"] {
        let mut filled = [0usize; 2];
        for i in 0.. {
            let id = format!("{device}-{i}");
            let attributes = Attributes::from([("device".to_owned(), device.to_owned())]);
            let a = evaluate(exp, &id, &attributes, None).unwrap();
            let v = a.variant.get();
            if !a.in_experiment || filled[v] == per_arm {
                if filled.iter().all(|&n| n == per_arm) {
                    break;
                }
                continue;
            }
            let rank = filled[v];
            let converts = (rank as f64) < rate(device, v) * per_arm as f64;
            filled[v] += 1;
            out.push(Visitor { id, device, variant: v, rank, converts });
        }
    }
    out
}

/// Posts the visitors' exposures (all but those `lost` drops) and their
/// conversions.
fn send(url: &str, visitors: &[Visitor], lost: impl Fn(&Visitor) -> bool) {
    let client = reqwest::blocking::Client::new();
    let variants = ["control", "benefit"];
    let mut exposures = Vec::new();
    let mut events = Vec::new();
    for v in visitors {
        if lost(v) {
            continue;
        }
        exposures.push(json!({ "visitor_id": v.id, "experiment": TEST, "variant": variants[v.variant],
                               "ts": "2026-11-28T10:00:00Z", "attributes": { "device": v.device } }));
        if v.converts {
            events.push(json!({ "id": format!("c-{}", v.id), "visitor_id": v.id, "name": "cart_offer_accepted",
                                "value": 1, "ts": "2026-11-28T11:00:00Z" }));
        }
    }
    for (path, items) in [("exposures", exposures), ("events", events)] {
        for batch in items.chunks(1000) {
            let r = client.post(format!("{url}/v1/{path}")).json(&batch).send().unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.text().unwrap());
        }
    }
}

fn get(url: &str, path: &str) -> Value {
    let r = reqwest::blocking::get(format!("{url}{path}")).unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().unwrap()
}

fn value<'a>(segments: &'a Value, segment: &str, value: &str) -> &'a Value {
    let s = segments["segments"].as_array().unwrap().iter().find(|s| s["segment"] == segment).unwrap();
    s["values"].as_array().unwrap().iter().find(|v| v["value"] == value).unwrap()
}

fn visitors_of(v: &Value) -> Vec<u64> {
    v["variants"].as_array().unwrap().iter().map(|a| a["visitors"].as_u64().unwrap()).collect()
}

/// Every value's visitors per variant add up to the report's.
fn assert_values_add_up(segments: &Value, report: &Value) {
    let whole: Vec<u64> =
        report["metrics"][0]["arms"].as_array().unwrap().iter().map(|a| a["visitors"].as_u64().unwrap()).collect();
    for s in segments["segments"].as_array().unwrap() {
        let mut sum = vec![0; whole.len()];
        for v in s["values"].as_array().unwrap() {
            for (t, n) in sum.iter_mut().zip(visitors_of(v)) {
                *t += n;
            }
        }
        assert_eq!(sum, whole, "segment {} adds up to the report", s["segment"]);
    }
}

#[test]
fn a_variant_losing_half_its_mobile_exposures_is_named_on_mobile_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server_with(&dir.path().join("data"), Path::new(EXPERIMENTS), AT_NOW);
    let fixture = visitors(1000, |_, _| 0.1);
    // Every other mobile visitor of the treatment never reports its exposure.
    send(&server.url, &fixture, |v| v.device == "mobile" && v.variant == 1 && v.rank % 2 == 0);
    let segments = get(&server.url, &format!("/api/v1/experiments/{TEST}/segments"));
    assert_eq!(segments["experiment"], TEST);
    assert_eq!(segments["as_of"], "2026-11-30");
    let mobile = value(&segments, "device", "mobile");
    let desktop = value(&segments, "device", "desktop");
    assert_eq!(visitors_of(mobile), [1000, 500]);
    assert_eq!(visitors_of(desktop), [1000, 1000]);
    assert_eq!((mobile["srm"]["judged"].as_bool(), mobile["srm"]["mismatch"].as_bool()), (Some(true), Some(true)));
    assert!(mobile["srm"]["p_value"].as_f64().unwrap() < 1e-10, "{}", mobile["srm"]);
    assert_eq!((desktop["srm"]["judged"].as_bool(), desktop["srm"]["mismatch"].as_bool()), (Some(true), Some(false)));
    assert_eq!(desktop["srm"]["p_value"], 1.0);
    // No visitor sent a customer type, and none a tablet.
    assert_eq!(visitors_of(value(&segments, "customer", "(none)")), [2000, 1500]);
    let tablet = value(&segments, "device", "tablet");
    assert_eq!((visitors_of(tablet), tablet["too_few_visitors"].as_bool()), (vec![0, 0], Some(true)));
    assert_eq!(tablet["srm"]["judged"], false);
    let report = get(&server.url, &format!("/api/v1/experiments/{TEST}/report"));
    assert_values_add_up(&segments, &report);
    // The report names the broken value, and only it.
    let summary = report["segments_summary"].as_array().unwrap();
    assert_eq!(summary.len(), 1, "{summary:#?}");
    let f = &summary[0];
    assert_eq!(
        (f["segment"].as_str(), f["value"].as_str(), f["kind"].as_str()),
        (Some("device"), Some("mobile"), Some("srm"))
    );
    assert_eq!(
        f["sentence"],
        "Exposures on mobile (device) do not split as configured (p < 0.001): check how `benefit` renders and tracks on mobile."
    );
    // The test page says it too, under "By segment", with a forest plot.
    let page = reqwest::blocking::get(format!("{}/experiments/{TEST}", server.url)).unwrap().text().unwrap();
    let by_segment = &page[page.find("By segment").expect("a By segment section")..];
    assert!(by_segment.contains("Exposures on mobile (device) do not split as configured"), "{by_segment}");
    assert!(by_segment.contains("<svg class=\"forest\""), "{by_segment}");
    assert!(by_segment.contains("exploratory"));
    assert!(
        !by_segment[..by_segment.find("Business cycles").unwrap()].contains(">tablet<"),
        "a value without visitors is left off"
    );
}

#[test]
fn a_lift_of_plus_20_on_desktop_and_minus_20_on_mobile_is_heterogeneous() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = spawn_server_with(&data, Path::new(EXPERIMENTS), AT_NOW);
    let fixture = visitors(2000, |device, variant| match (device, variant) {
        (_, 0) => 0.30,
        ("desktop", _) => 0.36,
        _ => 0.24,
    });
    send(&server.url, &fixture, |_| false);
    let segments = get(&server.url, &format!("/api/v1/experiments/{TEST}/segments"));
    let device = segments["segments"].as_array().unwrap().iter().find(|s| s["segment"] == "device").unwrap();
    let het = device["heterogeneity"].as_array().unwrap();
    let primary = het.iter().find(|h| h["metric"] == "cart_offer_acceptance" && h["variant"] == "benefit").unwrap();
    assert!(primary["p_value"].as_f64().unwrap() < 0.01, "{primary}");
    assert_eq!(primary["dof"], 1);
    assert_eq!(primary["values_used"], json!(["mobile", "desktop"]));
    let lift = |v: &str| value(&segments, "device", v)["metrics"][0]["lifts"][0].clone();
    let (m, d) = (lift("mobile"), lift("desktop"));
    assert!((m["relative_lift"].as_f64().unwrap() + 0.2).abs() < 1e-9, "{m}");
    assert!((d["relative_lift"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{d}");
    assert_eq!((m["direction"].as_str(), d["direction"].as_str()), (Some("worse"), Some("better")));
    assert!(m["p_value_adjusted"].as_f64().unwrap() >= m["p_value"].as_f64().unwrap());
    let report = get(&server.url, &format!("/api/v1/experiments/{TEST}/report"));
    let found: Vec<&Value> = report["segments_summary"].as_array().unwrap().iter().collect();
    let het = found.iter().find(|f| f["kind"] == "heterogeneity" && f["metric"] == "cart_offer_acceptance").unwrap();
    assert_eq!((het["segment"].as_str(), het["value"].as_str()), (Some("device"), Some("mobile")), "{het}");
    assert!(het["sentence"].as_str().unwrap().contains("-20.0% on mobile, +20.0% on desktop"), "{het}");
    // The breakdown survives a restart: it is read from the stored records.
    drop(server);
    let server = spawn_server_with(&data, Path::new(EXPERIMENTS), AT_NOW);
    assert_eq!(get(&server.url, &format!("/api/v1/experiments/{TEST}/segments")), segments);
}

/// A value's arms and lifts are the whole test's report run on that
/// value's visitors alone (a second server that saw only them); only the
/// correction differs (Benjamini–Hochberg here, Holm in the report).
#[test]
fn a_values_numbers_are_the_report_of_its_visitors_alone() {
    let dir = tempfile::tempdir().unwrap();
    let all = spawn_server_with(&dir.path().join("all"), Path::new(EXPERIMENTS), AT_NOW);
    let mobile_only = spawn_server_with(&dir.path().join("mobile"), Path::new(EXPERIMENTS), AT_NOW);
    let fixture = visitors(400, |device, variant| match device {
        "mobile" => 0.10 + 0.04 * variant as f64,
        _ => 0.2,
    });
    send(&all.url, &fixture, |_| false);
    send(&mobile_only.url, &fixture, |v| v.device != "mobile");
    let segments = get(&all.url, &format!("/api/v1/experiments/{TEST}/segments"));
    let report = get(&mobile_only.url, &format!("/api/v1/experiments/{TEST}/report"));
    let mobile = value(&segments, "device", "mobile");
    let metrics = mobile["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), report["metrics"].as_array().unwrap().len());
    for (got, want) in metrics.iter().zip(report["metrics"].as_array().unwrap()) {
        assert_eq!(got["name"], want["name"]);
        common::assert_same_json(&got["arms"], &want["arms"], &format!("{} arms", got["name"]));
        assert_eq!(got["lifts"].as_array().unwrap().len(), 1, "{}", got["name"]);
        for (g, w) in got["lifts"].as_array().unwrap().iter().zip(want["lifts"].as_array().unwrap()) {
            for field in ["relative_lift", "ci", "std_error", "p_value", "absolute_lift", "bayesian", "cuped"] {
                common::assert_same_json(&g[field], &w[field], &format!("{} {field}", got["name"]));
            }
        }
    }
}

#[test]
fn postgresql_gives_the_numbers_of_sled() {
    let Some(pg) = Postgres::start("segments_postgresql_gives_the_numbers_of_sled") else { return };
    let dir = tempfile::tempdir().unwrap();
    let sled = spawn_server_with(&dir.path().join("data"), Path::new(EXPERIMENTS), AT_NOW);
    let store = pg.database();
    let replicas = [
        serve_postgres_with(&store, Path::new(EXPERIMENTS), AT_NOW),
        serve_postgres_with(&store, Path::new(EXPERIMENTS), AT_NOW),
    ];
    let fixture = visitors(300, |device, variant| if device == "mobile" { 0.2 + 0.05 * variant as f64 } else { 0.3 });
    let (even, odd): (Vec<Visitor>, Vec<Visitor>) = fixture.into_iter().partition(|v| v.rank % 2 == 0);
    for half in [&even, &odd] {
        send(&sled.url, half, |_| false);
    }
    send(&replicas[0].url, &even, |_| false);
    send(&replicas[1].url, &odd, |_| false);
    let path = format!("/api/v1/experiments/{TEST}/segments");
    let want = get(&sled.url, &path);
    assert_eq!(visitors_of(value(&want, "device", "mobile")), [300, 300]);
    for r in &replicas {
        common::assert_same_json(&get(&r.url, &path), &want, "segments");
    }
}

/// The simulator sends both segment attributes, and an effect scoped to a
/// device shows on that device: `--effect ...@device=desktop` and `@mobile`
/// in opposite directions make a heterogeneous lift (a fixed seed, so
/// fixed numbers).
#[test]
fn a_simulated_storefront_populates_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server_with(&dir.path().join("data"), Path::new(EXPERIMENTS), AT_NOW);
    let effects = [
        "--effect",
        "cart-protection-copy:benefit:+60%@device=desktop",
        "--effect",
        "cart-protection-copy:benefit:-50%@device=mobile",
    ];
    let mut args = vec!["--days", "14", "--visitors-per-day", "1500", "--seed", "29"];
    args.extend(effects);
    common::simulate(&server.url, &args);
    let segments = get(&server.url, &format!("/api/v1/experiments/{TEST}/segments"));
    for (segment, values) in
        [("device", &["mobile", "desktop"][..]), ("customer", &["first_time", "repeat", "high_value"])]
    {
        for v in values {
            assert!(visitors_of(value(&segments, segment, v)).iter().all(|&n| n >= 100), "{segment}={v}");
        }
        assert_eq!(visitors_of(value(&segments, segment, "(none)")), [0, 0], "{segment}");
    }
    let lift = |v: &str| value(&segments, "device", v)["metrics"][0]["lifts"][0]["relative_lift"].as_f64().unwrap();
    assert!(lift("mobile") < 0.0 && lift("desktop") > 0.0, "mobile {} desktop {}", lift("mobile"), lift("desktop"));
    let device = segments["segments"].as_array().unwrap().iter().find(|s| s["segment"] == "device").unwrap();
    let het =
        device["heterogeneity"].as_array().unwrap().iter().find(|h| h["metric"] == "cart_offer_acceptance").unwrap();
    assert!(het["p_value"].as_f64().unwrap() < 0.01, "{het}");
    let report = get(&server.url, &format!("/api/v1/experiments/{TEST}/report"));
    assert_values_add_up(&segments, &report);
}

/// The files path (`analyze --aggregates FILE --by`, the segment's
/// attribute a column of the file) and the warehouse path (`sql --by`,
/// `analyze --postgres --by`) give the service's numbers.
#[test]
fn the_files_and_warehouse_paths_give_the_services_breakdown() {
    let Some(pg) = Postgres::start("segments_the_files_and_warehouse_paths_give_the_services_breakdown") else {
        return;
    };
    let store = pg.database();
    let db = store.rsplit('/').next().unwrap().to_owned();
    let server = serve_postgres_with(&store, Path::new(EXPERIMENTS), AT_NOW);
    common::simulate(&server.url, &["--days", "14", "--visitors-per-day", "400", "--seed", "17", "--outliers"]);
    let want = get(&server.url, &format!("/api/v1/experiments/{TEST}/segments/device"));
    let definition = format!("{EXPERIMENTS}/{TEST}.toml");
    let offerlab = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab")).args(args).output().unwrap();
        assert!(out.status.success(), "offerlab {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let analyze = |source: &[&str]| -> Value {
        let mut args = vec!["analyze", "--experiment", &definition, "--now", "2026-11-30", "--by", "device"];
        args.extend(source);
        serde_json::from_str(&offerlab(&args)).unwrap()
    };
    common::assert_same_json(&analyze(&["--postgres", &store]), &want, "the warehouse path");
    // The same query's rows, the segment as a `device` column, as a file.
    let query = offerlab(&["sql", "--experiment", &definition, "--by", "device"]);
    let sums = "n, sum, sum_sq, den_sum, den_sum_sq, sum_xy, pre_sum, pre_sum_sq, sum_x_pre";
    let csv = pg.sql(
        &db,
        &format!(
            "COPY (SELECT variant, date, metric, {sums}, segment AS device FROM ({}) q) TO STDOUT WITH CSV HEADER",
            query.trim_end().trim_end_matches(';')
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aggregates.csv");
    std::fs::write(&file, csv).unwrap();
    let from_file = analyze(&["--aggregates", file.to_str().unwrap()]);
    // Caps are applied where sums are made: the file's sums came capped
    // from the query, so only what each cap did is not in them.
    common::assert_same_json(&from_file, &want, "the files path");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["analyze", "--experiment", &definition, "--aggregates", file.to_str().unwrap(), "--by", "browser"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("defines device, customer"));
}

/// A validated winner that loses on mobile keeps its verdict, and the
/// sentence says where it loses (a fixed seed, so fixed numbers).
#[test]
fn a_winner_that_loses_on_mobile_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server_with(&dir.path().join("data"), Path::new(EXPERIMENTS), AT_NOW);
    let test = "product-warranty-placement";
    common::simulate(
        &server.url,
        &[
            "--days",
            "21",
            "--visitors-per-day",
            "3000",
            "--seed",
            "4",
            "--effect",
            &format!("{test}:above_fold:+80%@device=desktop"),
            "--effect",
            &format!("{test}:above_fold:-25%@device=mobile"),
        ],
    );
    let report = get(&server.url, &format!("/api/v1/experiments/{test}/report"));
    let verdict = &report["verdict"];
    assert_eq!(
        (verdict["code"].as_str(), verdict["winner"].as_str()),
        (Some("validated_winner"), Some("above_fold")),
        "{verdict}"
    );
    let sentence = verdict["sentence"].as_str().unwrap();
    assert!(sentence.contains(", but it loses on mobile: -") && sentence.ends_with("% (exploratory)."), "{sentence}");
    // The list and the page say the same.
    let list = get(&server.url, "/api/v1/experiments");
    let listed = list["experiments"].as_array().unwrap().iter().find(|e| e["id"] == test).unwrap();
    assert_eq!(listed["verdict"]["sentence"], sentence);
}

#[test]
fn one_segment_alone_and_unknown_names_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server_with(&dir.path().join("data"), Path::new(EXPERIMENTS), AT_NOW);
    let one = get(&server.url, &format!("/api/v1/experiments/{TEST}/segments/customer"));
    let names: Vec<&Value> = one["segments"].as_array().unwrap().iter().map(|s| &s["segment"]).collect();
    assert_eq!(names, [&json!("customer")]);
    let r = reqwest::blocking::get(format!("{}/api/v1/experiments/no-such-test/segments", server.url)).unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::blocking::get(format!("{}/api/v1/experiments/{TEST}/segments/browser", server.url)).unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "unknown_segment", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("segments.toml defines device, customer"), "{body}");
    // The terminal: the same breakdown, and exit 2 naming the known segments.
    let report = |by: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
            .args(["report", TEST, "--url", &server.url, "--by", by])
            .output()
            .unwrap()
    };
    let out = report("device");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("By device (device), Cart offer acceptance: exploratory"), "{text}");
    let out = report("browser");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("unknown segment \"browser\"; segments.toml defines device, customer"), "{said}");
}
