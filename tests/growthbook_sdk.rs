//! GrowthBook's JavaScript SDK (npm `@growthbook/growthbook`, pinned in
//! tests/sdk/package.json) evaluates the `/api/features` payload of a real
//! server and must agree with `/v1/assign` for 20,000 visitors, every test
//! kind and targeting case; its tracking callback's exposures are all
//! accepted and counted (tests/sdk/parity.mjs). Also, over HTTP: client
//! keys, ETag and 304, Cache-Control, and a reload changing the payload.
//! Without node or the installed package the SDK test says it skipped.

mod common;

use std::path::Path;
use std::process::Command;

use chrono::Duration;
use common::{now, spawn_server_with, AT_NOW, EXPERIMENTS};
use serde_json::Value;

/// A test definition; `extra` goes before the first table.
fn definition(id: &str, status: &str, surface: &str, extra: &str, variants: &[(&str, f64)]) -> String {
    let start = (now() - Duration::days(1)).date_naive();
    let mut text = format!(
        "id = \"{id}\"\nname = \"{id}\"\nhypothesis = \"h\"\nstatus = \"{status}\"\nsurface = \"{surface}\"\n\
         dimension = \"copy\"\nstart = \"{start}\"\nprimary_metric = \"order_conversion\"\n{extra}\n\
         [stats]\nbaseline = 0.10\nmde = 0.10\n"
    );
    for (key, weight) in variants {
        text.push_str(&format!(
            "\n[[variants]]\nkey = \"{key}\"\nweight = {weight}\npayload = {{ text = \"{id} {key}\", rank = {weight} }}\n"
        ));
    }
    text
}

/// Every kind of test the payload must carry: targeting, coverage and
/// uneven weights; two tests sharing a namespace; another hash attribute;
/// paused, concluded, draft.
fn experiments(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(Path::new(EXPERIMENTS).join("metrics.toml"), dir.join("metrics.toml")).unwrap();
    let two = [("control", 0.5), ("treatment", 0.5)];
    let files = [
        (
            "targeted",
            definition(
                "targeted",
                "running",
                "product_page",
                "coverage = 0.8\ntargeting = { device = [\"mobile\"], country = [\"DE\", \"AT\"] }",
                &[("control", 0.3), ("treatment", 0.7)],
            ),
        ),
        (
            "ns-left",
            definition(
                "ns-left",
                "running",
                "cart",
                "namespace = { id = \"cart\", range = [0.0, 0.4] }",
                &[("control", 0.25), ("a", 0.25), ("b", 0.5)],
            ),
        ),
        (
            "ns-right",
            definition(
                "ns-right",
                "running",
                "cart",
                "coverage = 0.6\nnamespace = { id = \"cart\", range = [0.4, 1.0] }",
                &two,
            ),
        ),
        ("by-account", definition("by-account", "running", "checkout", "hash_attribute = \"account_id\"", &two)),
        ("paused-test", definition("paused-test", "paused", "post_purchase", "", &two)),
        ("concluded-test", definition("concluded-test", "concluded", "email", "winner = \"treatment\"", &two)),
        ("draft-test", definition("draft-test", "draft", "product_page", "", &two)),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }
}

fn sdk_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

#[test]
fn the_growthbook_js_sdk_agrees_with_assign_and_its_exposures_are_accepted() {
    let sdk = sdk_dir();
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node_ok || !sdk.join("node_modules/@growthbook/growthbook").exists() {
        common::skip(
            "the_growthbook_js_sdk_agrees_with_assign_and_its_exposures_are_accepted",
            "needs node and `npm ci --prefix tests/sdk`",
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    experiments(&root.path().join("experiments"));
    let server = spawn_server_with(&root.path().join("data"), &root.path().join("experiments"), AT_NOW);
    let out = Command::new("node").arg(sdk.join("parity.mjs")).arg(&server.url).arg("any-key").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    assert!(stdout.contains("parity: 20000 visitors"), "{stdout}");
    assert!(stdout.contains("tracking:"), "{stdout}");
}

#[test]
fn the_payload_is_cheap_to_poll_and_changes_on_reload() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("experiments");
    experiments(&dir);
    let server = spawn_server_with(&root.path().join("data"), &dir, AT_NOW);
    let http = reqwest::blocking::Client::new();
    let get = |etag: Option<&str>| {
        let mut req = http.get(format!("{}/api/features/shop-1", server.url));
        if let Some(tag) = etag {
            req = req.header("If-None-Match", tag);
        }
        req.send().unwrap()
    };
    let first = get(None);
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(first.headers()["cache-control"].to_str().unwrap().contains("max-age="));
    assert_eq!(first.headers()["access-control-allow-origin"], "*");
    let body: Value = first.json().unwrap();
    assert_eq!(body["status"], 200);
    assert!(body["dateUpdated"].is_string());
    let features = body["features"].as_object().unwrap();
    assert!(!features.contains_key("draft-test"), "a draft is absent");
    let rule = &features["targeted"]["rules"][0];
    assert_eq!(rule["hashVersion"], 2);
    assert_eq!(rule["coverage"], 0.8);
    assert_eq!(rule["weights"], serde_json::json!([0.3, 0.7]));
    assert_eq!(rule["meta"], serde_json::json!([{ "key": "control" }, { "key": "treatment" }]));
    assert_eq!(
        rule["condition"],
        serde_json::json!({ "country": { "$in": ["DE", "AT"] }, "device": { "$in": ["mobile"] } })
    );
    assert_eq!(features["ns-left"]["rules"][0]["namespace"], serde_json::json!(["cart", 0.0, 0.4]));
    assert_eq!(features["by-account"]["rules"][0]["hashAttribute"], "account_id");
    assert_eq!(features["paused-test"]["rules"][0]["force"], features["paused-test"]["defaultValue"]);
    assert_eq!(features["concluded-test"]["rules"][0]["force"]["text"], "concluded-test treatment");

    let again = get(Some(&etag));
    assert_eq!(again.status(), 304);
    assert!(again.bytes().unwrap().is_empty());
    assert_eq!(get(Some("W/\"0000000000000000\"")).status(), 200);

    // A reload with a changed definition changes the payload and its ETag.
    std::fs::write(
        dir.join("paused-test.toml"),
        std::fs::read_to_string(dir.join("paused-test.toml"))
            .unwrap()
            .replace("status = \"paused\"", "status = \"draft\""),
    )
    .unwrap();
    let reload = http.post(format!("{}/admin/reload", server.url)).send().unwrap();
    assert!(reload.status().is_success(), "{}", reload.text().unwrap());
    let after = get(Some(&etag));
    assert_eq!(after.status(), 200);
    assert_ne!(after.headers()["etag"].to_str().unwrap(), etag);
    let body: Value = after.json().unwrap();
    assert!(!body["features"].as_object().unwrap().contains_key("paused-test"));
}

#[test]
fn client_keys_are_checked_and_the_read_key_is_not_one() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("experiments");
    experiments(&dir);
    let env = [("OFFERLAB_READ_KEY", "r-secret"), ("OFFERLAB_WRITE_KEY", "w-secret")];
    let get = |url: &str, key: &str| reqwest::blocking::get(format!("{url}/api/features/{key}")).unwrap();

    let none = spawn_server_with(&root.path().join("data-1"), &dir, &env);
    let r = get(&none.url, "r-secret");
    assert_eq!(r.status(), 404);
    let body: Value = r.json().unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("OFFERLAB_CLIENT_KEYS"), "{body}");
    drop(none);

    let with = [env[0], env[1], ("OFFERLAB_CLIENT_KEYS", "shop-a,shop-b")];
    let shops = spawn_server_with(&root.path().join("data-2"), &dir, &with);
    assert_eq!(get(&shops.url, "shop-b").status(), 200);
    assert_eq!(get(&shops.url, "shop-c").status(), 404);
    assert_eq!(get(&shops.url, "r-secret").status(), 404);
}
