//! Assignment against the corpus the official GrowthBook Python SDK wrote
//! (tests/vectors/gen_growthbook.py). Equality is exact: offerlab performs
//! the same floating-point operations in the same order, so any difference
//! is a bug, not rounding.

use offerlab::assignment::{bucket_ranges, choose_variant, hash, in_namespace, BucketRange, HashVersion, Namespace};
use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    sdk: String,
    hash: Vec<HashCase>,
    bucket_ranges: Vec<RangeCase>,
    choose: Vec<ChooseCase>,
    namespace: Vec<NamespaceCase>,
    assign: Vec<AssignCase>,
}

#[derive(Deserialize)]
struct HashCase {
    seed: String,
    value: String,
    version: u8,
    expected: f64,
}

#[derive(Deserialize)]
struct RangeCase {
    num_variations: usize,
    coverage: f64,
    weights: Option<Vec<f64>>,
    expected: Vec<[f64; 2]>,
}

#[derive(Deserialize)]
struct ChooseCase {
    n: f64,
    ranges: Vec<[f64; 2]>,
    expected: i64,
}

#[derive(Deserialize)]
struct NamespaceCase {
    value: String,
    namespace: (String, f64, f64),
    expected: bool,
}

#[derive(Deserialize)]
struct AssignCase {
    seed: String,
    value: String,
    num_variations: usize,
    coverage: f64,
    weights: Option<Vec<f64>>,
    hash: f64,
    variant: i64,
}

fn corpus() -> Corpus {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/growthbook.json"))
        .expect("committed corpus");
    serde_json::from_str(&text).expect("corpus parses")
}

fn version(v: u8) -> HashVersion {
    match v {
        1 => HashVersion::V1,
        2 => HashVersion::V2,
        other => panic!("unknown hash version {other}"),
    }
}

fn as_index(v: Option<usize>) -> i64 {
    v.map_or(-1, |i| i as i64)
}

#[test]
fn corpus_is_large_enough() {
    let c = corpus();
    let total = c.hash.len() + c.bucket_ranges.len() + c.choose.len() + c.namespace.len() + c.assign.len();
    assert!(total >= 1000, "only {total} vectors from {}", c.sdk);
}

#[test]
fn hashes_match_the_sdk() {
    for case in corpus().hash {
        let got = hash(&case.seed, &case.value, version(case.version));
        assert_eq!(got, case.expected, "hash({:?}, {:?}, v{})", case.seed, case.value, case.version);
    }
}

#[test]
fn bucket_ranges_match_the_sdk() {
    for case in corpus().bucket_ranges {
        let got = bucket_ranges(case.num_variations, case.coverage, case.weights.as_deref());
        let got: Vec<[f64; 2]> = got.iter().map(|r| [r.start, r.end]).collect();
        assert_eq!(
            got, case.expected,
            "{} variants, coverage {}, weights {:?}",
            case.num_variations, case.coverage, case.weights
        );
    }
}

#[test]
fn chosen_variants_match_the_sdk() {
    for case in corpus().choose {
        let ranges: Vec<BucketRange> = case.ranges.iter().map(|r| BucketRange { start: r[0], end: r[1] }).collect();
        assert_eq!(as_index(choose_variant(case.n, &ranges)), case.expected, "n = {} in {:?}", case.n, case.ranges);
    }
}

#[test]
fn namespaces_match_the_sdk() {
    for case in corpus().namespace {
        let (id, start, end) = case.namespace.clone();
        let ns = Namespace { id, start, end };
        assert_eq!(in_namespace(&case.value, &ns), case.expected, "{:?} in {:?}", case.value, case.namespace);
    }
}

#[test]
fn full_assignments_match_the_sdk_including_outside_coverage() {
    let cases = corpus().assign;
    assert!(cases.iter().any(|c| c.variant == -1), "corpus lacks out-of-coverage cases");
    for case in cases {
        let n = hash(&case.seed, &case.value, HashVersion::V2);
        assert_eq!(n, case.hash, "hash of {:?}/{:?}", case.seed, case.value);
        let ranges = bucket_ranges(case.num_variations, case.coverage, case.weights.as_deref());
        assert_eq!(
            as_index(choose_variant(n, &ranges)),
            case.variant,
            "{:?}/{:?} (n = {n}) with coverage {} and weights {:?}",
            case.seed,
            case.value,
            case.coverage,
            case.weights
        );
    }
}
