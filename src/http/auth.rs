//! Access keys. With `OFFERLAB_WRITE_KEY` set, `/v1/*` and `/admin/*` need
//! `Authorization: Bearer <key>`; with `OFFERLAB_READ_KEY` set, the reports
//! (HTML and JSON) and `/metrics` need it, as the password of HTTP Basic
//! (so a browser prompts) or as a bearer token. `/healthz` stays open for
//! load balancers. A storefront's GrowthBook SDK reads its payload with a
//! client key in the path (`OFFERLAB_CLIENT_KEYS`, one per storefront):
//! public by nature, as it ships in the page, and never a read key. Keys
//! are compared in constant time.
//!
//! Which key a request needs is declared per route in [`crate::http::routes`],
//! never derived from the raw path, so a percent-encoded spelling of a
//! path cannot reach a route without its key.

use base64::Engine;
use subtle::ConstantTimeEq;

/// The configured keys; a key that is set is never empty.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    write: Option<String>,
    read: Option<String>,
    /// Guards `/admin/*` when set; else the write key does.
    admin: Option<String>,
    clients: Vec<String>,
}

/// A key that cannot protect anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is set but empty or only white space; set a real secret (e.g. `openssl rand -hex 32`) or unset it")]
pub struct EmptyKey(pub &'static str);

/// `key` without surrounding white space, with a warning when it had some.
fn trimmed(key: String, name: &str) -> String {
    let t = key.trim();
    if t.len() != key.len() && !t.is_empty() {
        tracing::warn!("{name} had white space around it; it is used without");
    }
    t.to_owned()
}

impl Keys {
    /// Keys as configured, without surrounding white space: a request's
    /// key is read trimmed, so a padded key (`" padded-key "` from a shell
    /// or a `.env` file) could never match, and every write would get 401.
    /// An empty or blank key would let anyone in while counting as set (a
    /// public bind allowed, an empty password accepted), so it is refused.
    pub fn new(write: Option<String>, read: Option<String>) -> Result<Keys, EmptyKey> {
        let check = |key: Option<String>, name| match key.map(|k| trimmed(k, name)) {
            Some(k) if k.is_empty() => Err(EmptyKey(name)),
            k => Ok(k),
        };
        Ok(Keys {
            write: check(write, "OFFERLAB_WRITE_KEY")?,
            read: check(read, "OFFERLAB_READ_KEY")?,
            admin: None,
            clients: Vec::new(),
        })
    }

    /// With the key `/admin/*` needs instead of the write key: a
    /// storefront's write key alone then cannot reload the definitions or
    /// download every visitor in a backup.
    pub fn with_admin(mut self, admin: Option<String>) -> Result<Keys, EmptyKey> {
        match admin.map(|k| trimmed(k, "OFFERLAB_ADMIN_KEY")) {
            Some(k) if k.is_empty() => return Err(EmptyKey("OFFERLAB_ADMIN_KEY")),
            k => self.admin = k,
        }
        Ok(self)
    }

    /// The storefronts' client keys, trimmed (`"shop-a, shop-b"` is
    /// `shop-a` and `shop-b`); a blank one is refused.
    pub fn with_clients(mut self, clients: Vec<String>) -> Result<Keys, EmptyKey> {
        let clients: Vec<String> = clients.into_iter().map(|k| trimmed(k, "a key of OFFERLAB_CLIENT_KEYS")).collect();
        if clients.iter().any(String::is_empty) {
            return Err(EmptyKey("a key of OFFERLAB_CLIENT_KEYS"));
        }
        self.clients = clients;
        Ok(self)
    }

    /// Whether `key` may read the SDK payload: a configured client key;
    /// with none configured, any key while reads are open (no read key,
    /// loopback), none once a read key guards the reports.
    pub fn client(&self, key: &str) -> Result<(), ClientDenied> {
        if self.clients.is_empty() {
            return match self.read {
                None => Ok(()),
                Some(_) => Err(ClientDenied::NoneConfigured),
            };
        }
        match self.clients.iter().fold(false, |found, k| found | equal(k, key)) {
            true => Ok(()),
            false => Err(ClientDenied::Unknown),
        }
    }

    /// Both keys are set: only then may the service listen beyond loopback.
    pub fn complete(&self) -> bool {
        self.write.is_some() && self.read.is_some()
    }

    pub fn none(&self) -> bool {
        self.write.is_none() && self.read.is_none()
    }
}

/// Which key a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Liveness, for load balancers.
    Open,
    /// Tracking and assignment.
    Write,
    /// Operator actions (`/admin/*`): the admin key, or the write key when
    /// no admin key is set.
    Admin,
    /// Reports and metrics.
    Read,
    /// The GrowthBook SDK payload: a client key in the path.
    Client,
}

/// Why a client key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientDenied {
    #[error("unknown client key; use one of OFFERLAB_CLIENT_KEYS")]
    Unknown,
    #[error("no client keys are configured and reads need the read key; set OFFERLAB_CLIENT_KEYS (one key per storefront, comma-separated)")]
    NoneConfigured,
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

/// Checks a request to a route that needs `access`, with the given
/// `Authorization` header.
pub fn authorize(keys: &Keys, access: Access, header: Option<&str>) -> Result<(), Denied> {
    let (key, basic) = match access {
        Access::Open | Access::Client => return Ok(()),
        Access::Write => (keys.write.as_deref(), false),
        Access::Admin => (keys.admin.as_deref().or(keys.write.as_deref()), false),
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
        Keys::new(Some("w-secret".into()), Some("r-secret".into())).unwrap()
    }

    #[test]
    fn admin_routes_need_the_admin_key_once_one_is_set() {
        assert_eq!(authorize(&keys(), Access::Admin, Some("Bearer w-secret")), Ok(()), "no admin key: the write key");
        let keys = keys().with_admin(Some("a-secret".into())).unwrap();
        assert_eq!(authorize(&keys, Access::Admin, Some("Bearer w-secret")), Err(Denied::Wrong { basic: false }));
        assert_eq!(authorize(&keys, Access::Admin, Some("Bearer a-secret")), Ok(()));
        assert_eq!(authorize(&keys, Access::Write, Some("Bearer w-secret")), Ok(()));
        assert_eq!(Keys::default().with_admin(Some("  ".into())).unwrap_err(), EmptyKey("OFFERLAB_ADMIN_KEY"));
    }

    #[test]
    fn write_routes_need_the_bearer_write_key() {
        assert_eq!(authorize(&keys(), Access::Write, None), Err(Denied::Missing { basic: false }));
        assert_eq!(authorize(&keys(), Access::Write, Some("Bearer nope")), Err(Denied::Wrong { basic: false }));
        assert_eq!(authorize(&keys(), Access::Write, Some("Bearer r-secret")), Err(Denied::Wrong { basic: false }));
        assert!(authorize(&keys(), Access::Write, Some("Bearer w-secret")).is_ok());
    }

    #[test]
    fn reports_take_the_read_key_as_basic_password_or_bearer() {
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("anyone:r-secret"));
        assert!(authorize(&keys(), Access::Read, Some(&basic)).is_ok());
        assert!(authorize(&keys(), Access::Read, Some("Bearer r-secret")).is_ok());
        assert_eq!(authorize(&keys(), Access::Read, None), Err(Denied::Missing { basic: true }));
        assert!(authorize(&keys(), Access::Open, None).is_ok());
        assert!(authorize(&Keys::default(), Access::Write, None).is_ok(), "no keys, no checks");
    }

    #[test]
    fn client_keys_are_checked_and_without_them_the_read_key_rule_applies() {
        let open = Keys::default();
        assert!(open.client("anything").is_ok(), "reads open: any client key");
        assert_eq!(keys().client("anything"), Err(ClientDenied::NoneConfigured));
        let shops = keys().with_clients(vec!["shop-a".into(), "shop-b".into()]).unwrap();
        assert!(shops.client("shop-b").is_ok());
        assert_eq!(shops.client("r-secret"), Err(ClientDenied::Unknown), "the read key is not a client key");
        assert!(Keys::default().with_clients(vec![" ".into()]).is_err());
    }

    #[test]
    fn empty_or_blank_keys_are_refused() {
        assert_eq!(Keys::new(Some(String::new()), None).unwrap_err(), EmptyKey("OFFERLAB_WRITE_KEY"));
        assert_eq!(Keys::new(Some("w".into()), Some(" \t".into())).unwrap_err(), EmptyKey("OFFERLAB_READ_KEY"));
        let padded = Keys::new(Some(" padded-key ".into()), None).unwrap();
        assert_eq!(padded.write.as_deref(), Some("padded-key"), "a padded key is used trimmed");
        let clients = Keys::new(None, None).unwrap().with_clients(vec!["shop-a".into(), " shop-b".into()]).unwrap();
        assert_eq!(clients.clients, ["shop-a", "shop-b"]);
        assert!(Keys::new(None, None).unwrap().none());
    }
}
