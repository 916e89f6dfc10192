//! The `offerlab` command line, run as a user would.

use std::process::Command;

use serde_json::Value;

fn offerlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn assign_prints_what_the_storefront_gets() {
    let out = offerlab(&[
        "assign",
        "cart-protection-copy",
        "visitor-42",
        "--attr",
        "device=mobile",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &json["assignments"][0];
    assert_eq!(a["experiment"], "cart-protection-copy");
    let n = offerlab::assignment::hash(
        "cart-protection-copy",
        "visitor-42",
        offerlab::assignment::HashVersion::V2,
    );
    assert_eq!(a["hash_value"], serde_json::json!(n));
    assert_eq!(a["variant"], if n < 0.5 { "control" } else { "benefit" });
    assert!(a["payload"]["headline"].is_string());
}

#[test]
fn assign_of_an_unknown_test_fails_clearly() {
    let out = offerlab(&["assign", "no-such-test", "v"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown experiment \"no-such-test\""));
}
