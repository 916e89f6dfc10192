//! Bench setup shared by the ingest benches: visitors exposed to the cart
//! test through the API, so that their events are attributed.

use serde_json::json;

/// The values of the two segment attributes visitors may carry: four
/// each (the last not listed in segments.toml, so "(other)").
const DEVICES: [&str; 4] = ["mobile", "desktop", "tablet", "watch"];
const CUSTOMERS: [&str; 4] = ["first_time", "repeat", "high_value", "wholesale"];

/// Exposes visitors `v0` to `v{n-1}` to `cart-protection-copy` on the
/// server at `url`, in their assigned variants, 1,000 per request; with
/// `segments`, each exposure carries a device and a customer type.
pub async fn expose_cart_visitors(
    client: &reqwest::Client,
    url: &str,
    experiments: &std::path::Path,
    n: usize,
    segments: bool,
) {
    let catalog = offerlab::experiment::load_dir(experiments).unwrap();
    let exp = catalog.get("cart-protection-copy").unwrap();
    for chunk in 0..n.div_ceil(1000) {
        let exposures: Vec<_> = (chunk * 1000..((chunk + 1) * 1000).min(n))
            .map(|i| {
                let v = format!("v{i}");
                let a = offerlab::assignment::evaluate(exp, &v, &Default::default(), None).unwrap();
                let attributes = match segments {
                    true => json!({ "device": DEVICES[i % 4], "customer_type": CUSTOMERS[i / 4 % 4] }),
                    false => json!({}),
                };
                json!({ "visitor_id": v, "experiment": exp.id, "variant": exp.variants[a.variant.get()].key,
                        "attributes": attributes })
            })
            .collect();
        let r = client.post(format!("{url}/v1/exposures")).json(&exposures).send().await.unwrap();
        assert!(r.status().is_success());
    }
}
