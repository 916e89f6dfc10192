//! Notifications, black-box: the real server, webhooks of `notify.toml`
//! pointing at receivers on loopback, verdicts changed by real traffic.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::notify::{
    broken_split, counter, evaluations, experiments_with as experiments, expose, reload, webhook, Received, Receiver,
};
use common::{spawn_server_with, Server, NOW};
use serde_json::Value;

const WARRANTY: &str = "product-warranty-placement";
const CART: &str = "cart-protection-copy";

/// The signature a receiver computes: HMAC-SHA256 of "timestamp.body".
fn signed_with(secret: &str, r: &Received) -> bool {
    let timestamp: i64 = r.header("x-offerlab-timestamp").parse().unwrap();
    r.header("x-offerlab-signature") == offerlab::notify::message::signature(secret.as_bytes(), timestamp, &r.body)
}

fn serve(data: &Path, experiments: &Path, secrets: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("OFFERLAB_NOW", NOW),
        ("OFFERLAB_NOTIFY_EVERY", "1h"),
        ("OFFERLAB_PUBLIC_URL", "https://shop.example/offerlab/"),
    ];
    env.extend_from_slice(secrets);
    spawn_server_with(data, experiments, &env)
}

/// The README's walkthrough makes the warranty test a validated winner;
/// the change reaches each webhook that wants it once, signed, with the
/// documented body (JSON) or a Slack message, and no other webhook.
#[test]
fn a_validated_winner_reaches_each_matching_webhook_once_signed() {
    let (json_hook, slack_hook, quiet_hook) =
        (Receiver::start(vec![]), Receiver::start(vec![]), Receiver::start(vec![]));
    let root = tempfile::tempdir().unwrap();
    let notify = [
        webhook("growth", &json_hook.url, "json", "\"validated_winner\"", WARRANTY, "SECRET_GROWTH"),
        webhook(
            "slack",
            &slack_hook.url,
            "slack",
            "\"validated_winner\", \"guardrail_harmed\"",
            WARRANTY,
            "SECRET_SLACK",
        ),
        webhook("quiet", &quiet_hook.url, "json", "\"guardrail_harmed\"", WARRANTY, "SECRET_GROWTH"),
    ]
    .concat();
    let dir = experiments(root.path(), &notify);
    let secrets = [("SECRET_GROWTH", "growth-secret"), ("SECRET_SLACK", "slack-secret")];
    let server = serve(&root.path().join("data"), &dir, &secrets);
    evaluations(&server.url, 1.0); // every test's first verdict, with no data: collecting data

    let walkthrough = [
        "--days",
        "21",
        "--visitors-per-day",
        "3000",
        "--seed",
        "4",
        "--effect",
        "product-warranty-placement:above_fold:+25%",
        "--returning",
        "0.4",
        "--outliers",
    ];
    common::simulate(&server.url, &walkthrough);
    reload(&server.url);
    let got = json_hook.wait_for(1, Duration::from_secs(60));
    let slack = slack_hook.wait_for(1, Duration::from_secs(60));
    // Another pass finds nothing new to send.
    reload(&server.url);
    evaluations(&server.url, 3.0);
    std::thread::sleep(Duration::from_millis(300)); // a second delivery would be sent at once
    assert_eq!(json_hook.received().len(), 1, "one delivery");
    assert_eq!(slack_hook.received().len(), 1, "one delivery");
    assert!(quiet_hook.received().is_empty(), "a webhook that does not want the verdict gets nothing");

    let r = &got[0];
    assert!(signed_with("growth-secret", r), "signed with the webhook's secret: {:?}", r.headers);
    assert_eq!(r.header("content-type"), "application/json");
    let body = r.json();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["as_of", "delivery_id", "experiment", "name", "previous_code", "report_url", "sent_at", "verdict"]
    );
    assert_eq!(body["delivery_id"], r.header("x-offerlab-delivery"));
    assert_eq!(body["experiment"], WARRANTY);
    assert_eq!(body["verdict"]["code"], "validated_winner");
    assert_eq!(body["verdict"]["winner"], "above_fold");
    assert!(body["verdict"]["sentence"].as_str().unwrap().len() > 20, "{body}");
    assert_eq!(body["previous_code"], "collecting_data");
    assert_eq!(body["report_url"], "https://shop.example/offerlab/experiments/product-warranty-placement");
    assert_eq!(body["as_of"], "2026-11-30");

    let r = &slack[0];
    assert!(signed_with("slack-secret", r));
    assert_slack_message(&r.json(), body["verdict"]["sentence"].as_str().unwrap());
    drop(server);
}

/// The shape Slack's incoming webhooks accept: `text`, and blocks of known
/// types whose text objects are `plain_text` or `mrkdwn` within Slack's
/// lengths (header 150, section 3000), every key one Slack knows.
fn assert_slack_message(m: &Value, sentence: &str) {
    let known = |v: &Value, keys: &[&str]| v.as_object().unwrap().keys().all(|k| keys.contains(&k.as_str()));
    assert!(known(m, &["text", "blocks"]), "{m}");
    let text = m["text"].as_str().expect("text");
    assert!(text.contains(&sentence.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")), "{text}");
    let blocks = m["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    let text_object = |t: &Value, max: usize| {
        assert!(known(t, &["type", "text", "emoji"]), "{t}");
        assert!(matches!(t["type"].as_str(), Some("plain_text" | "mrkdwn")), "{t}");
        let s = t["text"].as_str().unwrap();
        assert!(!s.is_empty() && s.chars().count() <= max, "{t}");
    };
    for b in blocks {
        match b["type"].as_str() {
            Some("header") => {
                assert!(known(b, &["type", "text", "block_id"]));
                assert_eq!(b["text"]["type"], "plain_text", "a header's text is plain");
                text_object(&b["text"], 150);
            }
            Some("section") => {
                assert!(known(b, &["type", "text", "block_id", "fields"]));
                text_object(&b["text"], 3000);
                assert!(
                    b["text"]["text"].as_str().unwrap().contains(&sentence.replace('&', "&amp;")),
                    "renders the sentence"
                );
            }
            Some("context") => {
                assert!(known(b, &["type", "elements", "block_id"]));
                for e in b["elements"].as_array().unwrap() {
                    text_object(e, 3000);
                }
            }
            other => panic!("a block Slack would refuse: {other:?}"),
        }
    }
}

/// A receiver answering 503 (Retry-After: 3), then 500, then 200 gets
/// three tries of one delivery id, though the server is killed (SIGKILL)
/// between the first two and restarted; one answering 400 gets one try.
#[test]
fn a_delivery_is_retried_with_one_id_across_a_kill_and_a_400_is_not() {
    let flaky = Receiver::start(vec![(503, Some(3)), (500, None)]);
    let refusing = Receiver::start(vec![(400, None)]);
    let root = tempfile::tempdir().unwrap();
    let notify = [
        webhook("flaky", &flaky.url, "json", "\"sample_ratio_mismatch\"", CART, "SECRET_OPS"),
        webhook("refusing", &refusing.url, "json", "\"sample_ratio_mismatch\"", CART, "SECRET_OPS"),
    ]
    .concat();
    let dir = experiments(root.path(), &notify);
    let data = root.path().join("data");
    let secrets = [("SECRET_OPS", "ops-secret")];
    let mut server = serve(&data, &dir, &secrets);
    evaluations(&server.url, 1.0);
    expose(&server.url, &broken_split(CART));
    reload(&server.url);
    let first = flaky.wait_for(1, Duration::from_secs(30));
    refusing.wait_for(1, Duration::from_secs(30));
    // The next try is due 3 s later (Retry-After): kill the sender before it.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert_eq!(flaky.received().len(), 1, "killed before the second try");

    let server = serve(&data, &dir, &secrets);
    let tries = flaky.wait_for(3, Duration::from_secs(60));
    evaluations(&server.url, 1.0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(flaky.received().len(), 3, "delivered at the third try, and not again");
    let id = first[0].header("x-offerlab-delivery").to_owned();
    assert_eq!(id.len(), 32, "{id}");
    for t in &tries {
        assert_eq!(t.header("x-offerlab-delivery"), id, "one delivery id on every try");
        assert!(signed_with("ops-secret", t));
        assert_eq!(t.json()["verdict"]["code"], "sample_ratio_mismatch");
    }
    assert_eq!(refusing.received().len(), 1, "a 400 is not tried again, not even after a restart");
    let delivered = counter(&server.url, "offerlab_webhook_deliveries_total{outcome=\"delivered\",webhook=\"flaky\"}");
    let retried = counter(&server.url, "offerlab_webhook_deliveries_total{outcome=\"retried\",webhook=\"flaky\"}");
    assert_eq!((delivered, retried), (1.0, 1.0), "this process's tries: a 500, then the delivery");

    // The list page shows how each webhook's last delivery ended.
    let until = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = reqwest::blocking::get(format!("{}/", server.url)).unwrap().text().unwrap();
        if page.contains("Delivered") || Instant::now() > until {
            break page;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let item = |name: &str| {
        let at = page.find(&format!("data-webhook=\"{name}\"")).unwrap_or_else(|| panic!("{name} listed: {page}"));
        page[at..].split("</li>").next().unwrap().to_owned()
    };
    let flaky_item = item("flaky");
    assert!(
        flaky_item.contains("Delivered")
            && flaky_item.contains("(HTTP 200, 3 tries): cart-protection-copy, Sample ratio mismatch"),
        "{flaky_item}"
    );
    assert!(!flaky_item.contains("secret-path"), "the URL's path is not shown: {flaky_item}");
    let refusing_item = item("refusing");
    assert!(refusing_item.contains("Not delivered") && refusing_item.contains("(HTTP 400, 1 try)"), "{refusing_item}");
}

/// `serve` refuses a webhook whose secret variable is not set.
#[test]
fn a_missing_secret_refuses_to_start() {
    let root = tempfile::tempdir().unwrap();
    let dir = experiments(
        root.path(),
        &webhook("growth", "https://hooks.example.com/x", "slack", "\"validated_winner\"", "*", "SECRET_NOT_SET"),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data"])
        .arg(root.path().join("data"))
        .arg("--experiments")
        .arg(&dir)
        .env_remove("SECRET_NOT_SET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("SECRET_NOT_SET is not set"), "{said}");
}

/// `offerlab notify test NAME` sends one signed sample to that webhook and
/// says what it answered; an unknown name lists the known ones.
#[test]
fn notify_test_sends_a_signed_sample_and_says_what_came_back() {
    let (ok, refusing) = (Receiver::start(vec![]), Receiver::start(vec![(400, None)]));
    let root = tempfile::tempdir().unwrap();
    let notify = [
        webhook("growth", &ok.url, "json", "\"validated_winner\"", WARRANTY, "SECRET_GROWTH"),
        webhook("ops", &refusing.url, "slack", "\"guardrail_harmed\"", "*", "SECRET_GROWTH"),
    ]
    .concat();
    let dir = experiments(root.path(), &notify);
    let run = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
            .args(["notify", "test", name, "--experiments"])
            .arg(&dir)
            .env("SECRET_GROWTH", "growth-secret")
            .output()
            .unwrap()
    };
    let out = run("growth");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("took the sample message: HTTP 200"));
    let got = ok.received();
    assert_eq!(got.len(), 1);
    assert!(signed_with("growth-secret", &got[0]));
    let body = got[0].json();
    assert_eq!(body["experiment"], WARRANTY);
    assert!(body["verdict"]["sentence"].as_str().unwrap().contains("test message"), "{body}");

    let out = run("ops");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not take the sample message: HTTP 400"));
    assert_slack_message(&refusing.received()[0].json(), "A test message from offerlab");

    let out = run("nobody");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("its webhooks: growth, ops"), "{said}");
}
