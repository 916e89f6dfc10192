//! Access keys: 401 without a key, 401 with a wrong one, 200 with the right
//! one; the browser is asked for HTTP Basic on reports; no public bind
//! without keys.

use base64::Engine;
use offerlab::config::Settings;
use offerlab::http::startup::{Application, StartupError};
use serde_json::json;

use crate::helpers::{fixture_definitions, spawn_app_configured, TestApp};

async fn keyed() -> TestApp {
    spawn_app_configured(&fixture_definitions(), |s| {
        s.write_key = Some("write-secret".into());
        s.read_key = Some("read-secret".into());
    })
    .await
}

async fn status(
    app: &TestApp,
    method: &str,
    path: &str,
    auth: Option<String>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let url = format!("{}{path}", app.address);
    let mut req = match method {
        "POST" => app.client.post(url).json(&json!({ "visitor_id": "v" })),
        _ => app.client.get(url),
    };
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let (code, headers) = (r.status().as_u16(), r.headers().clone());
    (code, headers, r.json().await.unwrap_or_default())
}

fn basic(password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("marketer:{password}")))
}

#[tokio::test]
async fn write_routes_need_the_write_key() {
    let app = keyed().await;
    for (method, path) in
        [("POST", "/v1/assign"), ("POST", "/v1/events"), ("POST", "/admin/reload"), ("GET", "/v1/assign?visitor_id=v")]
    {
        let (code, _, body) = status(&app, method, path, None).await;
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path} without a key"
        );
        let (code, _, _) = status(&app, method, path, Some("Bearer wrong".into())).await;
        assert_eq!(code, 401, "{method} {path} with a wrong key");
        let (code, _, _) = status(&app, method, path, Some("Bearer read-secret".into())).await;
        assert_eq!(code, 401, "{method} {path} with the read key");
        let (code, _, body) = status(&app, method, path, Some("Bearer write-secret".into())).await;
        assert_ne!(code, 401, "{method} {path} with the right key: {body}");
    }
}

#[tokio::test]
async fn reports_need_the_read_key_and_prompt_the_browser() {
    let app = keyed().await;
    for path in
        ["/", "/experiments/running-cart", "/api/v1/experiments", "/api/v1/experiments/running-cart/report", "/metrics"]
    {
        let (code, headers, _) = status(&app, "GET", path, None).await;
        assert_eq!(code, 401, "{path} without a key");
        let prompt = headers.get("www-authenticate").and_then(|h| h.to_str().ok()).unwrap_or_default();
        assert!(prompt.starts_with("Basic realm=\"offerlab\""), "{path}: {prompt}");
        let (code, _, _) = status(&app, "GET", path, Some(basic("wrong"))).await;
        assert_eq!(code, 401, "{path} with a wrong key");
        let (code, _, _) = status(&app, "GET", path, Some(basic("write-secret"))).await;
        assert_eq!(code, 401, "{path} with the write key");
        let (code, _, _) = status(&app, "GET", path, Some(basic("read-secret"))).await;
        assert_eq!(code, 200, "{path} with the read key");
    }
    let (code, _, _) = status(&app, "GET", "/healthz", None).await;
    assert_eq!(code, 200, "health stays open");
}

#[tokio::test]
async fn no_public_bind_without_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let experiments = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"));
    for (write, read) in [(None, None), (Some("w"), None), (None, Some("r"))] {
        let mut s = Settings::new("0.0.0.0:0".parse().unwrap(), dir.path().join("data"), experiments.clone());
        s.write_key = write.map(String::from);
        s.read_key = read.map(String::from);
        match Application::build(&s).await {
            Err(e @ StartupError::PublicWithoutKeys(_)) => {
                let m = e.to_string();
                assert!(m.contains("only loopback") && m.contains("OFFERLAB_WRITE_KEY"), "{m}");
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("bound 0.0.0.0 with keys {write:?} / {read:?}"),
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["serve", "--bind", "0.0.0.0:0", "--experiments"])
        .arg(&experiments)
        .arg("--data")
        .arg(dir.path().join("data2"))
        .env_remove("OFFERLAB_WRITE_KEY")
        .env_remove("OFFERLAB_READ_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to listen on 0.0.0.0:0"));
}

/// `path` with its first letter percent-encoded (`/v1/events` becomes
/// `/%761/events`): actix routes the decoded path, so the key check must too.
fn encoded(path: &str) -> String {
    let first = path[1..].chars().next().expect("a path with a first letter");
    format!("/%{:02X}{}", first as u32, &path[1 + first.len_utf8()..])
}

const WRITE_ROUTES: [(&str, &str); 5] = [
    ("POST", "/v1/assign"),
    ("GET", "/v1/assign?visitor_id=v"),
    ("POST", "/v1/events"),
    ("POST", "/v1/exposures"),
    ("POST", "/admin/reload"),
];
const READ_ROUTES: [&str; 6] = [
    "/",
    "/experiments/running-cart",
    "/api/v1/experiments",
    "/api/v1/experiments/running-cart/report",
    "/api/v1/experiments/running-cart/daily.csv",
    "/metrics",
];

#[tokio::test]
async fn percent_encoded_paths_need_the_same_keys() {
    let app = keyed().await;
    for (method, path) in WRITE_ROUTES {
        for spelled in [path.to_owned(), encoded(path)] {
            for auth in [
                None,
                Some("Bearer wrong".to_owned()),
                Some("Bearer read-secret".to_owned()),
                Some(basic("read-secret")),
            ] {
                let (code, _, body) = status(&app, method, &spelled, auth.clone()).await;
                assert_eq!(code, 401, "{method} {spelled} with {auth:?}: {body}");
            }
            let (code, _, body) = status(&app, method, &spelled, Some("Bearer write-secret".into())).await;
            assert!(code != 401 && code != 404, "{method} {spelled} with the write key: {code} {body}");
        }
    }
    for path in READ_ROUTES {
        let spellings = if path == "/" { vec![path.to_owned()] } else { vec![path.to_owned(), encoded(path)] };
        for spelled in spellings {
            for auth in
                [None, Some(basic("wrong")), Some(basic("write-secret")), Some("Bearer write-secret".to_owned())]
            {
                let (code, _, _) = status(&app, "GET", &spelled, auth.clone()).await;
                assert_eq!(code, 401, "GET {spelled} with {auth:?}");
            }
            let (code, _, _) = status(&app, "GET", &spelled, Some(basic("read-secret"))).await;
            assert_eq!(code, 200, "GET {spelled} with the read key");
        }
    }
}

#[tokio::test]
async fn with_only_the_write_key_no_spelling_of_a_write_route_is_open() {
    let app = spawn_app_configured(&fixture_definitions(), |s| s.write_key = Some("write-secret".into())).await;
    for (method, path) in WRITE_ROUTES {
        for spelled in [path.to_owned(), encoded(path)] {
            let (code, _, body) = status(&app, method, &spelled, None).await;
            assert_eq!(code, 401, "{method} {spelled} without a key: {body}");
        }
    }
    let (code, _, _) = status(&app, "GET", &encoded("/api/v1/experiments"), None).await;
    assert_eq!(code, 200, "reads stay open without a read key");
}

#[tokio::test]
async fn empty_or_blank_keys_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let experiments = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"));
    for (write, read) in [("", "r"), ("w", " "), ("\t", "")] {
        let mut s = Settings::new("0.0.0.0:0".parse().unwrap(), dir.path().join("data"), experiments.clone());
        s.write_key = Some(write.into());
        s.read_key = Some(read.into());
        match Application::build(&s).await {
            Err(e @ StartupError::EmptyKey(_)) => assert!(e.to_string().contains("empty"), "{e}"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("started with keys {write:?} / {read:?}"),
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offerlab"))
        .args(["serve", "--bind", "127.0.0.1:0", "--experiments"])
        .arg(&experiments)
        .arg("--data")
        .arg(dir.path().join("data2"))
        .env("OFFERLAB_WRITE_KEY", "")
        .env_remove("OFFERLAB_READ_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OFFERLAB_WRITE_KEY is set but empty"), "{stderr}");
}

/// Keys with white space around them are used trimmed: a padded write key
/// takes writes with the key itself, and `"shop-a, shop-b"` serves both.
#[tokio::test]
async fn padded_keys_are_trimmed() {
    let app = spawn_app_configured(&fixture_definitions(), |s| {
        s.write_key = Some(" padded-key ".into());
        s.read_key = Some("r".into());
        s.client_keys = vec!["shop-a".into(), " shop-b".into()];
    })
    .await;
    let write = app
        .client
        .post(format!("{}/v1/events", app.address))
        .bearer_auth("padded-key")
        .json(&json!({"id": "k1", "visitor_id": "v-1", "name": "order", "value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 200);
    for key in ["shop-a", "shop-b"] {
        let r = app.client.get(format!("{}/api/features/{key}", app.address)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{key}");
    }
}

/// The SDK payload in a browser: a preflight is answered, and a 404 for an
/// unknown client key carries CORS headers, so the browser shows the 404.
#[tokio::test]
async fn the_sdk_payload_answers_preflights_and_every_answer_has_cors() {
    let app = spawn_app_configured(&fixture_definitions(), |s| {
        s.write_key = Some("w".into());
        s.read_key = Some("r".into());
        s.client_keys = vec!["shop-a".into()];
    })
    .await;
    let url = |key: &str| format!("{}/api/features/{key}", app.address);
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, url("shop-a"))
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "if-none-match")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert!(preflight.headers()["access-control-allow-methods"].to_str().unwrap().contains("GET"));
    assert!(preflight.headers()["access-control-allow-headers"].to_str().unwrap().contains("If-None-Match"));
    let unknown = app.client.get(url("nope")).header("Origin", "https://shop.example").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["access-control-allow-origin"], "*");
    let known = app.client.get(url("shop-a")).send().await.unwrap();
    assert_eq!(known.headers()["access-control-allow-origin"], "*");
    let post = app.client.post(url("shop-a")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["access-control-allow-origin"], "*");
}
