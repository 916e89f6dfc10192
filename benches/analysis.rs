//! Analysis time for 2 variants × 5 metrics × 90 days of aggregates, beside
//! a baseline that only sums the same rows (the least any analysis must
//! do), in the same run. Run: `cargo bench --bench analysis`.

use chrono::Duration;
use criterion::{criterion_group, criterion_main, Criterion};
use offerlab::aggregates::AggregateRow;
use offerlab::analysis::analyze;
use offerlab::experiment::load_dir;
use offerlab::stats::Moments;

fn rows(start: chrono::NaiveDate) -> Vec<AggregateRow> {
    let metrics =
        ["upsell_acceptance", "order_conversion", "return_rate", "revenue_per_visitor", "average_order_value"];
    let mut out = Vec::new();
    for day in 0..90 {
        for (v, variant) in ["control", "benefit"].iter().enumerate() {
            for (m, metric) in metrics.iter().enumerate() {
                let n = 800 + day as u64 + v as u64;
                let sum = (n as f64) * (0.04 + 0.01 * m as f64 + 0.002 * v as f64);
                out.push(AggregateRow {
                    variant: variant.to_string(),
                    date: start + Duration::days(day),
                    metric: metric.to_string(),
                    moments: Moments {
                        n,
                        sum,
                        sum_sq: sum * 1.5,
                        den_sum: n as f64 * 0.3,
                        den_sum_sq: n as f64 * 0.4,
                        sum_xy: sum * 0.5,
                        ..Moments::default()
                    },
                });
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let catalog = load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"))).unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap().clone();
    let rows = rows(exp.start);
    let today = exp.start + Duration::days(90);
    let mut g = c.benchmark_group("analysis_90_days");
    g.bench_function("baseline_sum_rows", |b| {
        b.iter(|| {
            let mut total = Moments::default();
            for r in std::hint::black_box(&rows) {
                total.merge(&r.moments);
            }
            total
        })
    });
    g.bench_function("analyze_2_variants_5_metrics", |b| {
        b.iter(|| analyze(&exp, &catalog, std::hint::black_box(&rows), Vec::new(), today))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
