//! A blocking HTTP client of a running offerlab that reads version 1
//! replies ([`offerlab::wire::v1`]) typed: a refusal or another shape is
//! an error that shows what came back.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach offerlab at {url}: {source}; start it with `cargo run --release -- serve`")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("offerlab answered {status} to {path}: {message}")]
    Refused { path: String, status: u16, message: String },
    #[error("offerlab's answer to {path} is not a version 1 reply ({error}): {body}")]
    Unexpected { path: String, error: serde_json::Error, body: String },
}

pub struct Client {
    http: reqwest::blocking::Client,
    url: String,
}

impl Client {
    /// A client of the offerlab at `url` (a trailing `/` is dropped).
    pub fn new(url: &str) -> Self {
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("HTTP client");
        Client { http, url: url.trim_end_matches('/').to_owned() }
    }

    pub fn get<R: DeserializeOwned>(&self, path: &str, key: Option<&str>) -> Result<R, ClientError> {
        self.reply(path, self.http.get(format!("{}{path}", self.url)), key)
    }

    pub fn post<R: DeserializeOwned>(&self, path: &str, body: &Value, key: Option<&str>) -> Result<R, ClientError> {
        self.reply(path, self.http.post(format!("{}{path}", self.url)).json(body), key)
    }

    /// Streams the body of `GET path` (with `key` as its bearer) into `out`.
    pub fn download(&self, path: &str, key: Option<&str>, out: &mut impl std::io::Write) -> Result<u64, ClientError> {
        let http = reqwest::blocking::Client::builder().timeout(None).build().expect("HTTP client");
        let mut req = http.get(format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let unreachable = |source| ClientError::Unreachable { url: self.url.clone(), source };
        let mut r = req.send().map_err(unreachable)?;
        let status = r.status().as_u16();
        if !(200..300).contains(&status) {
            let body = r.text().map_err(unreachable)?;
            let said = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
            return Err(ClientError::Refused { path: path.into(), status, message: said.unwrap_or(body) });
        }
        r.copy_to(out).map_err(unreachable)
    }

    /// Sends `req` (with `key` as its bearer) and reads the reply as an `R`.
    fn reply<R: DeserializeOwned>(
        &self,
        path: &str,
        mut req: reqwest::blocking::RequestBuilder,
        key: Option<&str>,
    ) -> Result<R, ClientError> {
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let unreachable = |source| ClientError::Unreachable { url: self.url.clone(), source };
        let r = req.send().map_err(unreachable)?;
        let status = r.status().as_u16();
        let body = r.text().map_err(unreachable)?;
        if !(200..300).contains(&status) {
            // The API's own sentence when the refusal is one of its errors.
            let said = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
            return Err(ClientError::Refused { path: path.into(), status, message: said.unwrap_or(body) });
        }
        serde_json::from_str(&body).map_err(|error| ClientError::Unexpected { path: path.into(), error, body })
    }
}
