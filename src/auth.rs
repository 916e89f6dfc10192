//! Access keys. With `OFFERLAB_WRITE_KEY` set, `/v1/*` and `/admin/*` need
//! `Authorization: Bearer <key>`; with `OFFERLAB_READ_KEY` set, the reports
//! (HTML and JSON) and `/metrics` need it, as the password of HTTP Basic
//! (so a browser prompts) or as a bearer token. `/healthz` stays open for
//! load balancers. Keys are compared in constant time.

use base64::Engine;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub write: Option<String>,
    pub read: Option<String>,
}

/// Which key a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Write,
    Read,
}

pub fn access_for(path: &str) -> Access {
    if path == "/healthz" {
        Access::Open
    } else if path.starts_with("/v1/") || path.starts_with("/admin/") {
        Access::Write
    } else {
        Access::Read
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No credentials; `basic` says whether to ask the browser for them.
    Missing {
        basic: bool,
    },
    Wrong {
        basic: bool,
    },
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The secret an `Authorization` header carries: a bearer token, or the
/// password of HTTP Basic.
fn presented(header: &str) -> Option<String> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text.split_once(':').map(|(_, password)| password.to_owned());
    }
    None
}

/// Checks a request for `path` with the given `Authorization` header.
pub fn authorize(keys: &Keys, path: &str, header: Option<&str>) -> Result<(), Denied> {
    let (key, basic) = match access_for(path) {
        Access::Open => return Ok(()),
        Access::Write => (keys.write.as_deref(), false),
        Access::Read => (keys.read.as_deref(), true),
    };
    let Some(key) = key else { return Ok(()) };
    match header.and_then(presented) {
        None => Err(Denied::Missing { basic }),
        Some(given) if equal(&given, key) => Ok(()),
        Some(_) => Err(Denied::Wrong { basic }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys { write: Some("w-secret".into()), read: Some("r-secret".into()) }
    }

    #[test]
    fn write_routes_need_the_bearer_write_key() {
        assert_eq!(authorize(&keys(), "/v1/events", None), Err(Denied::Missing { basic: false }));
        assert_eq!(authorize(&keys(), "/v1/events", Some("Bearer nope")), Err(Denied::Wrong { basic: false }));
        assert_eq!(authorize(&keys(), "/admin/reload", Some("Bearer r-secret")), Err(Denied::Wrong { basic: false }));
        assert!(authorize(&keys(), "/v1/events", Some("Bearer w-secret")).is_ok());
    }

    #[test]
    fn reports_take_the_read_key_as_basic_password_or_bearer() {
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("anyone:r-secret"));
        assert!(authorize(&keys(), "/", Some(&basic)).is_ok());
        assert!(authorize(&keys(), "/api/v1/experiments", Some("Bearer r-secret")).is_ok());
        assert_eq!(authorize(&keys(), "/experiments/x", None), Err(Denied::Missing { basic: true }));
        assert!(authorize(&keys(), "/healthz", None).is_ok());
        assert!(authorize(&Keys::default(), "/v1/events", None).is_ok(), "no keys, no checks");
    }
}
