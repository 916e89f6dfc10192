//! Assignment beside a raw FNV-1a pair in the same run: the two hash passes
//! GrowthBook's v2 scheme makes (seed and visitor id, then the inner
//! hash's digits), with no allocation, as the baseline; then one test's
//! `evaluate`, and `assign_all` over every committed test.
//! Run: `cargo bench --bench assignment`.

use criterion::{criterion_group, criterion_main, Criterion};
use offerlab::assignment::{assign_all, evaluate, AssignQuery, Attributes, Fnv};
use offerlab::experiment::load_dir;

fn bench(c: &mut Criterion) {
    let catalog = load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"))).unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap().clone();
    let attributes = Attributes::new();
    let ids: Vec<String> = (0..1024).map(|i| format!("visitor-{i:06}")).collect();
    let queries: Vec<AssignQuery> = ids.iter().map(|v| AssignQuery::new(v.parse().unwrap())).collect();
    eprintln!("assign_all covers {} tests", catalog.experiments().count());
    let mut g = c.benchmark_group("assignment");
    let mut i = 0;
    g.bench_function("baseline_raw_fnv1a_pair", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            let inner = Fnv::START.text(&exp.seed).text(std::hint::black_box(&ids[i])).value();
            Fnv::START.digits(inner).value()
        })
    });
    g.bench_function("evaluate_one_test", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            evaluate(&exp, std::hint::black_box(&ids[i]), &attributes, None)
        })
    });
    g.bench_function("assign_all_committed_tests", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            assign_all(&catalog, std::hint::black_box(&queries[i])).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
