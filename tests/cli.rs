//! The `offerlab` command line, run as a user would.

mod common;

use std::process::Command;

use serde_json::Value;

fn offerlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_offerlab")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap()
}

#[test]
fn assign_prints_what_the_storefront_gets() {
    let out = offerlab(&["assign", "cart-protection-copy", "visitor-42", "--attr", "device=mobile"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &json["assignments"][0];
    assert_eq!(a["experiment"], "cart-protection-copy");
    let n = offerlab::assignment::hash("cart-protection-copy", "visitor-42", offerlab::assignment::HashVersion::V2);
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

#[test]
fn analyze_reproduces_the_reference_numbers_of_the_example_aggregates() {
    let out = offerlab(&[
        "analyze",
        "--experiment",
        "experiments/cart-protection-copy.toml",
        "--aggregates",
        "tests/vectors/example-aggregates.csv",
        "--now",
        "2026-11-23",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/stats.json")).unwrap(),
    )
    .unwrap();
    let reference = &vectors["example_report"];
    let close = |got: &Value, want: &Value, what: &str| {
        let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
        assert!((g - w).abs() <= 1e-6 * w.abs().max(g.abs()) + 1e-12, "{what}: {g} vs {w}");
    };
    let metrics = report["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 6);
    for m in metrics {
        let name = m["name"].as_str().unwrap();
        let (got, want) = (&m["lifts"][0], &reference["metrics"][name]);
        close(&got["relative_lift"], &want["relative_lift"], name);
        close(&got["ci"][0], &want["ci"][0], name);
        close(&got["ci"][1], &want["ci"][1], name);
        close(&got["p_value"], &want["p_value"], name);
    }
    close(&report["srm"]["p_value"], &reference["srm_p_value"], "srm");
    let needed = reference["sample_size"].as_f64().unwrap().ceil();
    assert_eq!(report["sample_size"]["per_variant"].as_f64().unwrap(), needed);
    assert_eq!(report["cycles_completed"], 3);
    assert!(report["verdict"]["sentence"].as_str().unwrap().len() > 20);
}

#[test]
fn analyze_reads_json_aggregates_too_and_reports_bad_files_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("aggs.json");
    std::fs::write(
        &json_path,
        r#"[{"variant":"control","date":"2026-11-02","metric":"cart_offer_acceptance","n":100,"sum":4,"sum_sq":4},
            {"variant":"benefit","date":"2026-11-02","metric":"cart_offer_acceptance","n":100,"sum":6,"sum_sq":6}]"#,
    )
    .unwrap();
    let args =
        ["analyze", "--experiment", "experiments/cart-protection-copy.toml", "--now", "2026-11-03", "--aggregates"];
    let out = offerlab(&[&args[..], &[json_path.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["metrics"][0]["arms"][1]["visitors"], 100);

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "variant,date\ncontrol,yesterday\n").unwrap();
    let out = offerlab(&[&args[..], &[bad.to_str().unwrap()]].concat());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing column metric, n, sum, sum_sq"), "{err}");
    assert!(err.contains("expected the header variant,date,metric,n,sum,sum_sq,den_sum"), "{err}");
}

/// A misspelt, extra or missing column (or JSON key) is refused by name,
/// never read as 0; a field that does not read names its row and field;
/// a count written as an integral float is a count.
#[test]
fn analyze_refuses_unknown_columns_and_names_the_row_and_field_of_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let args =
        ["analyze", "--experiment", "experiments/cart-protection-copy.toml", "--now", "2026-11-03", "--aggregates"];
    let run = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = offerlab(&[&args[..], &[path.to_str().unwrap()]].concat());
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let header = "variant,date,metric,n,sum,sum_sq";
    let row = "control,2026-11-02,average_order_value,10,450,30000";
    let (ok, err) = run("misspelt.csv", &format!("{header},den_sums\n{row},7\n"));
    assert!(!ok && err.contains("unknown column \"den_sums\" (did you mean den_sum?)"), "{err}");
    let (ok, err) = run("extra.csv", &format!("{header},note\n{row},hi\n"));
    assert!(!ok && err.contains("unknown column \"note\""), "{err}");
    let json = r#"[{"variant":"control","date":"2026-11-02","metric":"cart_offer_acceptance","n":100,"sum":4,"sum_sq":4,"surprise":1}]"#;
    let (ok, err) = run("surprise.json", json);
    assert!(!ok && err.contains("row 1: unknown key \"surprise\""), "{err}");
    let (ok, err) = run("date.csv", &format!("{header}\n{row}\ncontrol,2026-13-01,order_conversion,10,1,1\n"));
    assert!(!ok && err.contains("row 2, date: \"2026-13-01\" is not a date; write it as YYYY-MM-DD"), "{err}");
    let (ok, err) = run("half.csv", &format!("{header}\ncontrol,2026-11-02,order_conversion,10.5,1,1\n"));
    assert!(!ok && err.contains("row 1, n: \"10.5\" is not a whole number of visitors"), "{err}");
    let (ok, err) = run("sum.json", &json.replace(r#""sum":4,"#, r#""sum":"four","#).replace(r#","surprise":1"#, ""));
    assert!(!ok && err.contains("row 1, sum: \"four\" is not a finite number"), "{err}");
    let floats =
        r#"[{"variant":"control","date":"2026-11-02","metric":"cart_offer_acceptance","n":396.0,"sum":4,"sum_sq":4}]"#;
    let (ok, err) = run("floats.json", floats);
    assert!(ok, "an integral float is a count: {err}");
}

/// `analyze` over the CSV `rows` of the cart test must refuse them, print no
/// report, and say each of `says`.
fn assert_refused(rows: &str, says: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, rows).unwrap();
    let out = offerlab(&[
        "analyze",
        "--experiment",
        "experiments/cart-protection-copy.toml",
        "--aggregates",
        file.to_str().unwrap(),
        "--now",
        "2026-11-23",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no report is printed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for said in says {
        assert!(stderr.contains(said), "{said:?} missing from:\n{stderr}");
    }
}

#[test]
fn analyze_refuses_rows_it_cannot_use_and_names_each() {
    assert_refused(
        "variant,date,metric,n,sum,sum_sq,den_sum,den_sum_sq,sum_xy\n\
         control,2026-11-02,cart_offer_acceptance,100,4,4,,,\n\
         contrl,2026-11-02,cart_offer_acceptance,100,4,4,,,\n\
         benefit,2026-11-02,cart_offer_acceptnce,100,4,4,,,\n\
         benefit,2026-11-02,cart_offer_acceptance,10,20,20,,,\n\
         benefit,2026-11-02,revenue_per_visitor,10,100,10,,,\n",
        &[
            "row 2: variant \"contrl\" is not a variant of cart-protection-copy; use one of: control, benefit",
            "row 3: metric \"cart_offer_acceptnce\" is not a metric",
            "row 4: 20 conversions of 10 visitors is impossible",
            "row 5: sum_sq below sum²/n is impossible",
            "4 problem(s)",
        ],
    );
}

/// Covariate sums no visitors can have are refused with the row and why.
#[test]
fn analyze_refuses_impossible_covariate_sums() {
    assert_refused(
        "variant,date,metric,n,sum,sum_sq,den_sum,den_sum_sq,sum_xy,pre_sum,pre_sum_sq,sum_x_pre\n\
         control,2026-11-02,order_conversion,100,10,10,0,0,0,20,20,5\n\
         control,2026-11-03,order_conversion,100,10,10,0,0,0,20,25,5\n\
         benefit,2026-11-02,order_conversion,100,10,10,0,0,0,20,20,12\n\
         benefit,2026-11-03,revenue_per_visitor,8,20,60,0,0,0,20,60,65\n",
        &[
            "row 2: pre_sum 20 and pre_sum_sq 25 are impossible for a proportion's covariate",
            "row 3: sum_x_pre 12 is impossible",
            "row 4: sum_x_pre 65 is beyond what sum and pre_sum allow (Cauchy–Schwarz",
            "3 problem(s)",
        ],
    );
}

#[test]
fn analyze_needs_one_source_and_says_when_the_warehouse_is_unreachable() {
    let exp = "experiments/cart-protection-copy.toml";
    let none = offerlab(&["analyze", "--experiment", exp]);
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("--aggregates"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://offerlab@127.0.0.1:{port}/shop");
    let down = offerlab(&["analyze", "--experiment", exp, "--postgres", &url]);
    assert!(!down.status.success());
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(err.contains("cannot reach the warehouse"), "{err}");
}

#[test]
fn sql_prints_one_query_with_the_tests_metrics_and_quoted_names() {
    let out = offerlab(&[
        "sql",
        "--experiment",
        "experiments/cart-protection-copy.toml",
        "--events-table",
        "analytics.event\"log",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sql = String::from_utf8(out.stdout).unwrap();
    assert!(sql.contains("FROM \"exposures\" AS x"), "{sql}");
    assert!(sql.contains("LEFT JOIN \"analytics\".\"event\"\"log\" AS e"), "{sql}");
    assert!(sql.contains("'cart_offer_acceptance'"), "the primary metric: {sql}");
    assert_eq!(sql.matches(';').count(), 1, "one statement");
}

#[test]
fn simulate_refuses_a_returning_share_outside_zero_to_one() {
    for bad in ["1.5", "-0.1", "half"] {
        let out = offerlab(&["simulate", &format!("--returning={bad}")]);
        assert!(!out.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("\"{bad}\" is not a share between 0 and 1, e.g. 0.4")), "{err}");
    }
}

/// Against a server with both keys, a simulator that lacks one stops at
/// once, non-zero, and names the flag that gives it; with both it runs.
#[test]
fn simulate_stops_on_a_refused_key_and_names_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [("OFFERLAB_WRITE_KEY", "w-secret"), ("OFFERLAB_READ_KEY", "r-secret"), ("OFFERLAB_NOW", common::NOW)];
    let server = common::spawn_server_with(dir.path(), std::path::Path::new(common::EXPERIMENTS), &keys);
    let run = |keys: &[&str]| {
        let mut args = vec!["simulate", "--url", &server.url, "--days", "1", "--visitors-per-day", "20"];
        args.extend_from_slice(keys);
        let out = Command::new(env!("CARGO_BIN_EXE_offerlab"))
            .args(&args)
            .env_remove("OFFERLAB_WRITE_KEY")
            .env_remove("OFFERLAB_READ_KEY")
            .env("OFFERLAB_NOW", common::NOW)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stderr), text(&out.stdout))
    };
    let (ok, err, _) = run(&["--write-key", "w-secret"]);
    assert!(!ok && err.contains("refused /api/v1/experiments") && err.contains("pass --read-key"), "{err}");
    let (ok, err, _) = run(&["--read-key", "r-secret"]);
    assert!(!ok && err.contains("refused /v1/assign") && err.contains("pass --write-key"), "{err}");
    let (ok, err, out) = run(&["--write-key", "w-secret", "--read-key", "r-secret"]);
    assert!(ok && out.contains("0 rejected"), "{err}{out}");
}

/// A refused store URL never prints its password, from a flag or from
/// OFFERLAB_STORE; the scheme is accepted in any case, around white space.
#[test]
fn a_refused_store_url_never_prints_its_password() {
    for (flag, env) in [
        (Some("postgre://offerlab:S3cret@127.0.0.1:1/db"), None),
        (None, Some("postgre://offerlab:S3cret@127.0.0.1:1/db")),
        (Some(" POSTGRES://offerlab:S3cret@127.0.0.1:1/db "), None),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--experiments", "experiments", "--write-deadline", "1"]);
        if let Some(url) = flag {
            cmd.args(["--store", url]);
        }
        match env {
            Some(url) => cmd.env("OFFERLAB_STORE", url),
            None => cmd.env_remove("OFFERLAB_STORE"),
        };
        let out = cmd.output().unwrap();
        let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{printed}");
        assert!(!printed.contains("S3cret"), "{printed}");
        if flag.is_some_and(|u| u.contains("POSTGRES")) {
            // Accepted as a PostgreSQL URL: refused only for the closed port.
            assert!(printed.contains("PostgreSQL"), "{printed}");
        } else {
            assert!(printed.contains("postgre://offerlab:***@127.0.0.1:1/db is not a PostgreSQL URL"), "{printed}");
        }
    }
}
