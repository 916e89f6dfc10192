//! Every validation rule of experiment definitions: the folder is refused,
//! and the message names the file, the line where the TOML has one, and
//! what to change.

mod common;

use std::path::Path;
use std::process::Command;

use offerlab::experiment::{load_dir, ValidationError};

const METRICS: &str = include_str!("../experiments/metrics.toml");

fn base(id: &str) -> String {
    format!(
        r#"id = "{id}"
name = "A test"
hypothesis = "Something improves"
status = "running"
surface = "cart"
dimension = "copy"
start = "2026-11-02"
primary_metric = "upsell_acceptance"
guardrail_metrics = ["order_conversion"]

[[variants]]
key = "control"
weight = 0.5

[[variants]]
key = "treatment"
weight = 0.5
"#
    )
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics.toml"), METRICS).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// Loads a folder holding `a.toml` with `text`; returns the one error.
fn only_error(text: &str) -> ValidationError {
    let dir = folder(&[("a.toml", text)]);
    let errors = load_dir(dir.path()).expect_err("folder should be refused").0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors.into_iter().next().unwrap();
    assert!(e.file.ends_with("a.toml"), "names the file: {e}");
    e
}

fn assert_says(e: &ValidationError, line: Option<usize>, parts: &[&str]) {
    assert_eq!(e.line, line, "line of: {e}");
    for p in parts {
        assert!(e.message.contains(p), "message should contain {p:?}: {e}");
    }
}

#[test]
fn the_base_definition_is_valid() {
    let dir = folder(&[("a.toml", &base("a"))]);
    assert_eq!(load_dir(dir.path()).unwrap().len(), 1);
}

#[test]
fn unknown_field() {
    let text = base("a").replace("dimension = \"copy\"", "dimension = \"copy\"\ncolour = \"red\"");
    assert_says(&only_error(&text), Some(7), &["unknown field `colour`", "remove it"]);
}

#[test]
fn invalid_toml_syntax_names_the_line() {
    let text = base("a").replace("status = \"running\"", "status = running\"");
    let e = only_error(&text);
    assert_eq!(e.line, Some(4), "{e}");
}

#[test]
fn unknown_enum_value_lists_the_allowed_ones() {
    let text = base("a").replace("surface = \"cart\"", "surface = \"basket\"");
    assert_says(&only_error(&text), Some(5), &["basket", "product_page", "use one of"]);
}

#[test]
fn stem_differs_from_id() {
    assert_says(
        &only_error(&base("b")),
        Some(1),
        &["differs from the file name", "rename the file to b.toml or set id = \"a\""],
    );
}

#[test]
fn fewer_than_two_variants() {
    let text = base("a").split("[[variants]]\nkey = \"treatment\"").next().unwrap().replace("0.5", "1.0");
    assert_says(&only_error(&text), Some(11), &["1 variant", "at least two [[variants]]"]);
}

#[test]
fn more_variants_than_a_test_can_conclude_with() {
    let head = base("a");
    let head = &head[..head.find("[[variants]]").unwrap()];
    let mut text = head.to_owned();
    for i in 0..101 {
        text.push_str(&format!("[[variants]]\nkey = \"v{i}\"\nweight = 0.00990099\n\n"));
    }
    let line = head.lines().count() + 100 * 4 + 1;
    assert_says(&only_error(&text), Some(line), &["101 variants", "at most 100"]);
}

/// A metric misspelt in metrics.toml is one error there, at its table,
/// naming the tests that name the right spelling, not one per test.
#[test]
fn a_metric_misspelt_in_the_metrics_file_is_one_error_there() {
    let dir = folder(&[
        ("a.toml", &base("a")),
        ("b.toml", &base("b").replace("surface = \"cart\"", "surface = \"checkout\"")),
    ]);
    let metrics = METRICS.replace("[order_conversion]", "[order_convresion]");
    std::fs::write(dir.path().join("metrics.toml"), &metrics).unwrap();
    let errors = load_dir(dir.path()).expect_err("folder should be refused").0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(e.file.ends_with("metrics.toml"), "{e}");
    let line = metrics.lines().position(|l| l.starts_with("[order_convresion]")).unwrap() + 1;
    assert_says(
        e,
        Some(line),
        &[
            "\"order_convresion\" is named by no test",
            "\"order_conversion\", which 2 tests name (a.toml, b.toml)",
            "rename [order_convresion] to [order_conversion]",
        ],
    );

    // A name nothing defined resembles stays an error in each test.
    let dir = folder(&[("a.toml", &base("a").replace("[\"order_conversion\"]", "[\"refund_rate\"]"))]);
    let e = only_error(&std::fs::read_to_string(dir.path().join("a.toml")).unwrap());
    assert!(e.message.contains("unknown metric \"refund_rate\""), "{e}");
}

#[test]
fn negative_weight() {
    let text = base("a").replace("key = \"treatment\"\nweight = 0.5", "key = \"treatment\"\nweight = -0.5");
    let dir = folder(&[("a.toml", &text)]);
    let errors = load_dir(dir.path()).unwrap_err().0;
    let e = errors.iter().find(|e| e.message.contains("-0.5 is outside [0, 1]")).expect("negative weight refused");
    assert_says(e, Some(15), &["treatment", "between 0 and 1"]);
}

#[test]
fn weights_that_do_not_sum_to_one() {
    let text = base("a").replace("key = \"treatment\"\nweight = 0.5", "key = \"treatment\"\nweight = 0.4");
    assert_says(&only_error(&text), Some(11), &["sum to 0.9", "add up to 1"]);
}

#[test]
fn coverage_outside_unit_interval() {
    let text = base("a").replace("start = ", "coverage = 1.5\nstart = ");
    assert_says(&only_error(&text), Some(7), &["coverage = 1.5", "outside [0, 1]"]);
}

#[test]
fn namespace_range_outside_unit_interval() {
    let text = base("a").replace("start = ", "namespace = { id = \"cart\", range = [0.5, 1.2] }\nstart = ");
    assert_says(&only_error(&text), Some(7), &["namespace range [0.5, 1.2]", "0 <= start < end <= 1"]);
}

#[test]
fn unknown_metric() {
    let text = base("a").replace("[\"order_conversion\"]", "[\"order_conversoin\"]");
    assert_says(
        &only_error(&text),
        Some(9),
        &["unknown metric \"order_conversoin\"", "define it in metrics.toml", "order_conversion"],
    );
}

#[test]
fn concluded_without_winner() {
    let text = base("a").replace("status = \"running\"", "status = \"concluded\"");
    assert_says(&only_error(&text), Some(4), &["needs a winner", "winner = \"<variant key>\""]);
}

#[test]
fn concluded_with_unknown_winner() {
    let text = base("a").replace("status = \"running\"", "status = \"concluded\"\nwinner = \"benefit\"");
    assert_says(&only_error(&text), Some(5), &["winner \"benefit\" is not a variant", "control, treatment"]);
}

#[test]
fn running_tests_that_could_share_a_visitor() {
    let dir = folder(&[("a.toml", &base("a")), ("b.toml", &base("b"))]);
    let errors = load_dir(dir.path()).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].file.ends_with("b.toml"));
    assert_eq!(errors[0].line, Some(5), "the line of b's surface");
    assert!(errors[0].message.contains("\"a\" and \"b\" both run on surface \"cart\""), "{}", errors[0]);
    assert!(errors[0].message.contains("disjoint ranges"), "{}", errors[0]);
}

#[test]
fn running_tests_in_disjoint_namespace_slices_are_allowed() {
    let a = base("a").replace("start = ", "namespace = { id = \"cart\", range = [0.0, 0.5] }\nstart = ");
    let b = base("b").replace("start = ", "namespace = { id = \"cart\", range = [0.5, 1.0] }\nstart = ");
    let dir = folder(&[("a.toml", &a), ("b.toml", &b)]);
    assert_eq!(load_dir(dir.path()).unwrap().len(), 2);
}

#[test]
fn running_tests_with_disjoint_targeting_are_allowed() {
    let a = base("a").replace("start = ", "targeting = { device = [\"mobile\"] }\nstart = ");
    let b = base("b").replace("start = ", "targeting = { device = [\"desktop\"] }\nstart = ");
    let dir = folder(&[("a.toml", &a), ("b.toml", &b)]);
    assert_eq!(load_dir(dir.path()).unwrap().len(), 2);
}

#[test]
fn missing_metrics_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), base("a")).unwrap();
    let e = &load_dir(dir.path()).unwrap_err().0[0];
    assert!(e.file.ends_with("metrics.toml") && e.message.contains("needs a metrics.toml"), "{e}");
}

#[test]
fn every_error_of_every_file_is_reported_at_once() {
    let bad_a = base("a").replace(
        "weight = 0.5\n\n[[variants]]\nkey = \"treatment\"",
        "weight = 0.7\n\n[[variants]]\nkey = \"treatment\"",
    );
    let bad_c = base("x");
    let dir = folder(&[("a.toml", &bad_a), ("c.toml", &bad_c)]);
    let errors = load_dir(dir.path()).unwrap_err().0;
    assert!(errors.iter().any(|e| e.file.ends_with("a.toml")));
    assert!(errors.iter().any(|e| e.file.ends_with("c.toml")));
}

fn validate(dir: &Path) -> std::process::Output {
    validate_args(&[dir.as_os_str()])
}

#[test]
fn validate_command_exits_0_on_the_committed_folder_and_1_on_a_bad_one() {
    let ok = validate(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments")));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let dir = folder(&[("a.toml", &base("b"))]);
    let bad = validate(dir.path());
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("a.toml:1: id \"b\" differs from the file name"), "{stderr}");
}

/// `offerlab validate` refuses a `notify.toml` with an unknown verdict code,
/// an unknown test id and a URL that is not http(s), each at its line, and
/// exits 1 without naming a webhook's URL path.
#[test]
fn validate_command_names_each_mistake_of_the_notify_file() {
    let notify = r#"[[webhook]]
name = "growth-team"
url = "ftp://hooks.example.com/services/T000/B000/XXX"
on = ["validated_winer", "guardrail_harmed"]
experiments = ["no-such-test"]
secret_env = "OFFERLAB_WEBHOOK_SECRET_GROWTH"
"#;
    let dir = folder(&[("a.toml", &base("a")), ("notify.toml", notify)]);
    let out = validate(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for said in [
        "notify.toml:3: ",
        "http:// or https://",
        "notify.toml:4: ",
        "\"validated_winer\" is not a verdict code",
        "notify.toml:5: ",
        "no test has the id",
    ] {
        assert!(stderr.contains(said), "should say {said:?}: {stderr}");
    }

    let fixed = notify
        .replace("ftp://", "https://")
        .replace("validated_winer", "validated_winner")
        .replace("no-such-test", "a");
    std::fs::write(dir.path().join("notify.toml"), fixed).unwrap();
    let ok = validate(dir.path());
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn metric_names_and_their_event_names_keep_to_a_safe_alphabet() {
    for (table, event, says) in [
        ("\"revenue\\u0000copy\"", "order", "metric name \"revenue\\0copy\" may only use lowercase letters"),
        ("\"Revenue Per Visitor\"", "order", "may only use lowercase letters, digits, '-' and '_'"),
        ("revenue_copy", "ord\\u0007er", "event name \"ord\\u{7}er\" must be 1 to 64 bytes without control characters"),
    ] {
        let e = metric_error(table, &format!("kind = \"mean\"\nevent = \"{event}\""));
        assert_says(&e, Some(METRICS.lines().count() + 2), &[says]);
    }
}

#[test]
fn one_typo_in_the_metrics_file_is_one_error_and_no_empty_suggestion() {
    let broken = METRICS.replacen("kind = ", "kind == ", 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics.toml"), broken).unwrap();
    std::fs::write(dir.path().join("a.toml"), base("a")).unwrap();
    let errors = load_dir(dir.path()).expect_err("folder should be refused").0;
    assert_eq!(errors.len(), 1, "only the real error: {errors:?}");
    assert!(errors[0].file.ends_with("metrics.toml") && errors[0].line.is_some(), "{}", errors[0]);

    let dir = folder(&[("a.toml", &base("a"))]);
    std::fs::write(dir.path().join("metrics.toml"), "").unwrap();
    for e in load_dir(dir.path()).expect_err("no metric defined").0 {
        assert!(!e.message.trim_end().ends_with(':') && !e.message.contains("one of: \n"), "{e}");
        assert!(e.message.contains("defines no metric yet"), "{e}");
    }
}

#[test]
fn a_missing_field_names_a_line() {
    let text = base("a").replace("surface = \"cart\"\n", "");
    let e = only_error(&text);
    assert!(e.message.contains("missing field `surface`"), "{e}");
    assert!(e.line.is_some(), "{e}");
}

/// Records one exposure of test "a" in `store`, as the service would.
async fn expose_a(store: &dyn offerlab::store::Store, dir: &Path) {
    use offerlab::records::Exposure;
    use offerlab::store::Write;
    let catalog = std::sync::Arc::new(load_dir(dir).unwrap());
    offerlab::allocation::admit(store, &catalog).await.unwrap();
    let ts = chrono::DateTime::parse_from_rfc3339("2026-11-03T10:00:00Z").unwrap().to_utc();
    let exposure = Exposure {
        visitor: "v".parse().unwrap(),
        experiment: "a".parse().unwrap(),
        variant: offerlab::ids::VariantIndex::CONTROL,
        ts,
        phase: 1,
        attributes: Default::default(),
    };
    store.record(catalog, vec![Write::Exposure(exposure)]).await.unwrap();
}

fn validate_args(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_offerlab")).arg("validate").args(args).output().unwrap()
}

/// `validate DIR <store flag>` accepts the folder, then refuses new weights
/// for the exposed test "a", naming the file and line.
fn refuses_new_weights(dir: &Path, store: [&std::ffi::OsStr; 2]) {
    let with_store = |dir: &Path| validate_args(&[dir.as_os_str(), store[0], store[1]]);
    let ok = with_store(dir);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    std::fs::write(
        dir.join("a.toml"),
        base("a").replacen("weight = 0.5", "weight = 0.7", 1).replacen("weight = 0.5", "weight = 0.3", 1),
    )
    .unwrap();
    let plain = validate(dir);
    assert!(plain.status.success(), "the new weights are valid on their own");
    let bad = with_store(dir);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("a.toml:11: the allocation of \"a\""), "{stderr}");
    assert!(stderr.contains("allocation_version = 2"), "{stderr}");
}

#[tokio::test]
async fn validate_with_data_refuses_what_the_service_would_refuse() {
    use offerlab::store::{SledStore, Store};
    let dir = folder(&[("a.toml", &base("a"))]);
    let data = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(data.path()).await.unwrap();
        expose_a(&store, dir.path()).await;
        store.close().await.unwrap();
    }
    refuses_new_weights(dir.path(), ["--data".as_ref(), data.path().as_os_str()]);
    let run = validate_args;
    let absent = run(&[dir.path().as_os_str(), "--data".as_ref(), data.path().join("nope").as_os_str()]);
    assert_eq!(absent.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&absent.stderr).contains("no offerlab data here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_with_a_postgres_store_refuses_what_the_replicas_would_refuse() {
    let Some(pg) =
        common::postgres::Postgres::start("validate_with_a_postgres_store_refuses_what_the_replicas_would_refuse")
    else {
        return;
    };
    let dir = folder(&[("a.toml", &base("a"))]);
    let url = pg.database();
    // The replica's store stays open: PostgreSQL is shared.
    let store = offerlab::store::PgStore::open(&url).await.unwrap();
    expose_a(&store, dir.path()).await;
    refuses_new_weights(dir.path(), ["--store".as_ref(), url.as_ref()]);
}

/// Adds `[table]` with `body` to the committed metrics; returns the one
/// error, which must name metrics.toml and a line of the new table.
fn metric_error(table: &str, body: &str) -> ValidationError {
    let metrics = format!("{METRICS}\n[{table}]\n{body}\n");
    let line = METRICS.lines().count() + 2;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics.toml"), &metrics).unwrap();
    std::fs::write(dir.path().join("a.toml"), base("a")).unwrap();
    let errors = load_dir(dir.path()).expect_err("folder should be refused").0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].file.ends_with("metrics.toml"), "{}", errors[0]);
    let at = errors[0].line.expect("a line");
    assert!((line..=line + body.lines().count()).contains(&at), "line {at}, table at {line}: {}", errors[0]);
    errors.into_iter().next().unwrap()
}

#[test]
fn a_cap_needs_one_valid_form_on_a_metric_that_has_spread() {
    let mean = "kind = \"mean\"\nevent = \"order\"\n";
    for (body, says) in [
        ("kind = \"proportion\"\nevent = \"order\"\ncap = { absolute = 1.0 }".to_owned(), "cannot be capped"),
        (format!("{mean}cap = {{ absolute = 500.0, percentile = 0.99 }}"), "not both"),
        (format!("{mean}cap = {{ ignore_zeros = true }}"), "needs absolute or percentile"),
        (format!("{mean}cap = {{ absolute = -5.0 }}"), "must be a positive number"),
        (format!("{mean}cap = {{ absolute = 5.0, ignore_zeros = true }}"), "percentile cap only"),
        (format!("{mean}cap = {{ percentile = 99.0 }}"), "between 0 and 1, e.g. 0.99"),
        (format!("{mean}cap = {{ percentile = 0.99, ignore_zero = true }}"), "unknown field `ignore_zero`"),
    ] {
        let e = metric_error("extra", &body);
        assert!(e.message.contains(says), "{body}: {e}");
    }
}

#[test]
fn cuped_adjusts_proportions_and_means_with_a_bounded_pre_period() {
    let ratio = "kind = \"ratio\"\nnumerator = { event = \"order\", aggregate = \"sum\" }\n\
                 denominator = { event = \"order\", aggregate = \"count\" }\n";
    for (body, says) in [
        (format!("{ratio}cuped = {{ days = 14 }}"), "CUPED adjusts proportion and mean metrics only"),
        ("kind = \"mean\"\nevent = \"order\"\ncuped = { days = 0 }".to_owned(), "1 to 90 (got 0)"),
        ("kind = \"mean\"\nevent = \"order\"\ncuped = { days = 400 }".to_owned(), "1 to 90 (got 400)"),
        ("kind = \"mean\"\nevent = \"order\"\ncuped = { weeks = 2 }".to_owned(), "unknown field `weeks`"),
    ] {
        let e = metric_error("extra", &body);
        assert!(e.message.contains(says), "{body}: {e}");
    }
}

#[test]
fn a_misspelt_time_zone_names_its_line_and_the_forms_accepted() {
    let text = base("a").replace("surface = \"cart\"\n", "surface = \"cart\"\ntimezone = \"Europe/Berln\"\n");
    let e = only_error(&text);
    assert!(e.message.contains("\"Europe/Berln\"") && e.message.contains("Europe/Berlin"), "{e}");
    assert!(e.message.contains("+01:00"), "{e}");
    assert_eq!(e.line, Some(text.lines().position(|l| l.starts_with("timezone")).unwrap() + 1), "{e}");
    let ok = base("a").replace("surface = \"cart\"\n", "surface = \"cart\"\ntimezone = \"America/New_York\"\n");
    let dir = folder(&[("a.toml", &ok)]);
    assert_eq!(load_dir(dir.path()).unwrap().get("a").unwrap().timezone.to_string(), "America/New_York");
}

#[test]
fn a_currency_that_is_not_an_iso_code_is_refused_at_its_line() {
    let line =
        METRICS.lines().position(|l| l.starts_with("currency = ")).expect("the committed file names a currency") + 1;
    for (written, says) in
        [("EURO", "is not an ISO 4217 code such as \"EUR\""), ("usd", "write it in capitals, \"USD\"")]
    {
        let dir = folder(&[("a.toml", &base("a"))]);
        let broken = METRICS.replacen("\ncurrency = \"USD\"", &format!("\ncurrency = \"{written}\""), 1);
        std::fs::write(dir.path().join("metrics.toml"), broken).unwrap();
        let errors = load_dir(dir.path()).expect_err("folder should be refused").0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].file.ends_with("metrics.toml"), "{}", errors[0]);
        assert_says(&errors[0], Some(line), &[says]);
    }
    // Without the line, amounts are plain numbers: no error.
    let dir = folder(&[("a.toml", &base("a"))]);
    std::fs::write(dir.path().join("metrics.toml"), METRICS.replacen("\ncurrency = \"USD\"", "\n", 1)).unwrap();
    load_dir(dir.path()).expect("currency is optional");
}
