//! HTTP manners at the edges: 405 with `Allow`, `HEAD` wherever `GET`
//! works, a deadline on slow bodies, security headers on pages, and
//! refused requests counted in `/metrics`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{fixture_definitions, spawn_app, spawn_app_configured};

#[tokio::test]
async fn a_wrong_method_gets_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (reqwest::Method::GET, "/v1/events", "POST"),
        (reqwest::Method::PUT, "/v1/exposures", "POST"),
        (reqwest::Method::DELETE, "/api/v1/experiments", "GET, HEAD"),
        (reqwest::Method::POST, "/healthz", "GET, HEAD"),
        (reqwest::Method::PATCH, "/v1/assign", "GET, HEAD, POST"),
        (reqwest::Method::GET, "/admin/reload", "POST"),
    ] {
        let r = app.client.request(method.clone(), format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"].to_str().unwrap(), allow, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    }
    let (code, body) = app.get("/no/such/path").await;
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn head_works_wherever_get_does() {
    let app = spawn_app().await;
    for path in
        ["/healthz", "/metrics", "/", "/experiments/running-cart", "/api/v1/experiments", "/v1/assign?visitor_id=v"]
    {
        let get = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        let head = app.client.head(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        assert_eq!(head.status().as_u16(), 200, "HEAD {path}");
        assert_eq!(head.headers().get("content-type"), get.headers().get("content-type"), "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }
}

#[tokio::test]
async fn pages_forbid_sniffing_and_scripts() {
    let app = spawn_app().await;
    for path in ["/", "/experiments/running-cart", "/api/v1/experiments", "/healthz"] {
        let r = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("script-src"), "{path}: no script is allowed: {csp}");
    }
}

/// Writes each part after its pause, then returns all the server wrote
/// before closing.
fn send_in_parts(port: u16, parts: &[(Duration, &str)]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    for (pause, part) in parts {
        std::thread::sleep(*pause);
        stream.write_all(part.as_bytes()).unwrap();
        stream.flush().unwrap();
    }
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends a request head that promises a body and never sends it.
fn stalled_body(port: u16) -> String {
    let head = "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"id\":";
    send_in_parts(port, &[(Duration::ZERO, head)])
}

/// Sends a request whose body arrives in two parts, `pause` apart.
fn body_in_two_parts(port: u16, pause: Duration) -> String {
    let body = r#"{"visitor_id":"slow-client","attributes":{"device":"mobile"}}"#;
    let head = format!(
        "POST /v1/assign HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(20);
    send_in_parts(port, &[(Duration::ZERO, &format!("{head}{first}")), (pause, rest)])
}

/// A slow client is not a stalled one: a body whose second part comes well
/// within the deadline is read whole and answered.
#[tokio::test]
async fn a_body_in_parts_within_the_deadline_is_answered() {
    let app = spawn_app_configured(&fixture_definitions(), |s| s.body_timeout = 10.0).await;
    let port = app.port;
    let answer =
        tokio::task::spawn_blocking(move || body_in_two_parts(port, Duration::from_millis(300))).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""visitor_id":"slow-client""#), "{answer}");
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_and_frees_the_worker() {
    let app = spawn_app_configured(&fixture_definitions(), |s| s.body_timeout = 1.0).await;
    let port = app.port;
    let answer = tokio::task::spawn_blocking(move || stalled_body(port)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    let (code, _) = app.get("/healthz").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn refusals_are_counted_in_metrics() {
    let app = spawn_app_configured(&fixture_definitions(), |s| {
        s.write_key = Some("w".into());
        s.body_limit = 64;
    })
    .await;
    let r = app.client.post(format!("{}/v1/events", app.address)).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let big = json!({ "id": "x".repeat(200) });
    let r = app.client.post(format!("{}/v1/events", app.address)).bearer_auth("w").json(&big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let r = app.client.get(format!("{}/v1/events", app.address)).bearer_auth("w").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let text = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    for (method, status) in [("POST", 401), ("POST", 413), ("GET", 405)] {
        let series =
            format!("offerlab_http_requests_total{{method=\"{method}\",route=\"/v1/events\",status=\"{status}\"}} 1");
        assert!(text.contains(&series), "missing {series} in\n{text}");
    }
}

/// The suite stores where it says: on PostgreSQL, a write lands in the
/// test's own database; on sled, in the test's data folder.
#[tokio::test]
async fn the_suite_stores_in_the_backend_it_names() {
    let app = crate::helpers::spawn_app().await;
    let (status, _) = app
        .post("/v1/events", &serde_json::json!({"id": "s1", "visitor_id": "v-1", "name": "order", "value": 1}))
        .await;
    assert_eq!(status, 200);
    match (crate::ON_POSTGRES, app.postgres()) {
        (true, Some((pg, db))) => assert_eq!(pg.sql(db, "SELECT id FROM events"), "s1"),
        (true, None) => panic!("the PostgreSQL suite runs without PostgreSQL"),
        (false, Some(_)) => panic!("the sled suite stores in PostgreSQL"),
        (false, None) => assert!(app.data.join("db").exists(), "sled's folder holds the data"),
    }
}
