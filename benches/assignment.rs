//! Assignment per visitor and test, beside a raw FNV-1a pair (the two hash
//! calls GrowthBook's v2 scheme makes) in the same run.
//! Run: `cargo bench --bench assignment`.

use criterion::{criterion_group, criterion_main, Criterion};
use offerlab::assignment::{assign_all, evaluate, fnv1a32, AssignQuery, Attributes};
use offerlab::experiment::load_dir;

fn bench(c: &mut Criterion) {
    let catalog = load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"))).unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap().clone();
    let attributes = Attributes::new();
    let ids: Vec<String> = (0..1024).map(|i| format!("visitor-{i:06}")).collect();
    let mut g = c.benchmark_group("assignment");
    let mut i = 0;
    g.bench_function("baseline_raw_fnv1a_pair", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            let inner = fnv1a32(&format!("{}{}", exp.seed, ids[i]));
            fnv1a32(&inner.to_string())
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
            let q = AssignQuery { visitor_id: ids[i].clone(), ..AssignQuery::default() };
            assign_all(&catalog, std::hint::black_box(&q)).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
