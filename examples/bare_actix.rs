//! The baseline of `benches/load.sh`: a bare actix-web server doing the
//! least an assignment must (parse a small JSON body, two FNV passes, a
//! JSON reply), and a bare `/healthz`. offerlab's request path is measured
//! against it in the same run.
//! Run: `cargo run --release --example bare_actix -- 127.0.0.1:18081`.

use actix_web::{web, App, HttpResponse, HttpServer};
use offerlab::bucketing::Fnv;

#[derive(serde::Deserialize)]
struct Body {
    visitor_id: String,
}

#[derive(serde::Serialize)]
struct Reply<'a> {
    visitor_id: &'a str,
    hash: f64,
}

async fn assign(body: web::Json<Body>) -> HttpResponse {
    let inner = Fnv::START.text("seed").text(&body.visitor_id).value();
    let hash = f64::from(Fnv::START.digits(inner).value() % 10_000) / 10_000.0;
    HttpResponse::Ok().json(Reply { visitor_id: &body.visitor_id, hash })
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".into());
    HttpServer::new(|| App::new().route("/healthz", web::get().to(healthz)).route("/v1/assign", web::post().to(assign)))
        .bind(addr)?
        .run()
        .await
}
