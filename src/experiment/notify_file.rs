//! `notify.toml`: the webhooks told when a test's verdict changes, parsed
//! into [`Webhook`]s. The file is optional; a secret never lives in it, only
//! the name of the environment variable that holds it.

use std::collections::{BTreeSet, HashSet};

use serde::Deserialize;
use toml::Spanned;

use super::errors::{FileErrors, ValidationError};
use crate::analysis::VerdictCode;
use crate::ids::ExperimentId;

/// The file that configures notifications, inside the experiments folder.
pub const NOTIFY_FILE: &str = "notify.toml";

/// What a webhook's body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// offerlab's own JSON document (README: notifications).
    Json,
    /// A Slack incoming-webhook message: `text` and blocks.
    Slack,
}

/// One webhook: where to send, in which format, on which verdicts of which
/// tests, signed with the secret in `secret_env`.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub name: String,
    pub url: reqwest::Url,
    pub format: WebhookFormat,
    pub on: Vec<VerdictCode>,
    /// `None`: every test (`["*"]`).
    pub experiments: Option<BTreeSet<ExperimentId>>,
    pub secret_env: String,
}

impl Webhook {
    /// Whether a change of `experiment`'s verdict to `code` is sent here.
    pub fn wants(&self, experiment: &ExperimentId, code: VerdictCode) -> bool {
        self.on.contains(&code) && self.experiments.as_ref().is_none_or(|ids| ids.contains(experiment))
    }

    /// The URL as logs may show it: scheme, host and port. A Slack URL's
    /// path is its secret.
    pub fn shown_url(&self) -> String {
        let url = &self.url;
        match url.port() {
            Some(port) => format!("{}://{}:{port}", url.scheme(), url.host_str().unwrap_or_default()),
            None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
        }
    }
}

/// Refuses a catalog whose webhooks' secret variables are not all set
/// (and not empty) in this process's environment: at start and reload, so
/// a missing secret is found before a verdict changes, not at its first
/// delivery.
pub fn check_secrets(catalog: &super::Catalog) -> Result<(), super::ValidationErrors> {
    let missing: Vec<ValidationError> = catalog
        .webhooks()
        .iter()
        .filter(|w| std::env::var(&w.secret_env).map_or(true, |v| v.is_empty()))
        .map(|w| ValidationError {
            file: NOTIFY_FILE.into(),
            line: None,
            message: format!(
                "webhook \"{}\": its secret variable {} is not set; set it in the service's environment (the receiver checks signatures with the same secret)",
                w.name, w.secret_env
            ),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(super::ValidationErrors(missing))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    #[serde(default)]
    webhook: Vec<Spanned<RawWebhook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: String,
    url: Spanned<String>,
    #[serde(default = "json")]
    format: WebhookFormat,
    on: Spanned<Vec<String>>,
    #[serde(default)]
    experiments: Option<Spanned<Vec<String>>>,
    secret_env: Spanned<String>,
}

fn json() -> WebhookFormat {
    WebhookFormat::Json
}

/// Parses `notify.toml`, checking every experiment id against `known`.
pub fn parse_notify(
    file: &str,
    text: &str,
    known: &BTreeSet<ExperimentId>,
) -> Result<Vec<Webhook>, Vec<ValidationError>> {
    let mut errs = FileErrors::new(file, text);
    let raw: RawNotify = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            errs.toml(e);
            return Err(errs.errors);
        }
    };
    let codes = VerdictCode::ALL.map(VerdictCode::as_str).join(", ");
    let mut names = HashSet::new();
    let mut hooks = Vec::new();
    for spanned in raw.webhook {
        let span = spanned.span();
        let w = spanned.into_inner();
        let mut ok = true;
        let name_ok = !w.name.is_empty()
            && w.name.len() <= 64
            && w.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            errs.at(
                span.clone(),
                format!(
                    "webhook name {:?} must be 1 to 64 lowercase letters, digits, - or _, e.g. \"growth-team\"",
                    w.name
                ),
            );
            ok = false;
        } else if !names.insert(w.name.clone()) {
            errs.at(
                span.clone(),
                format!("webhook \"{}\" is defined twice; give each [[webhook]] its own name", w.name),
            );
            ok = false;
        }
        let url = match reqwest::Url::parse(w.url.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
            Ok(_) | Err(_) => {
                errs.at(
                    w.url.span(),
                    format!("webhook \"{}\": url must be an http:// or https:// address, e.g. https://hooks.slack.com/services/...", w.name),
                );
                None
            }
        };
        let mut on = Vec::new();
        for code in w.on.get_ref() {
            match VerdictCode::parse(code) {
                Some(c) if !on.contains(&c) => on.push(c),
                Some(_) => {}
                None => {
                    errs.at(
                        w.on.span(),
                        format!("webhook \"{}\": {code:?} is not a verdict code; use some of {codes}", w.name),
                    );
                    ok = false;
                }
            }
        }
        if w.on.get_ref().is_empty() {
            errs.at(
                w.on.span(),
                format!(
                    "webhook \"{}\": on is empty; list the verdicts to send, e.g. on = [\"validated_winner\"]",
                    w.name
                ),
            );
            ok = false;
        }
        let experiments = match &w.experiments {
            None => None,
            Some(list) if list.get_ref().iter().any(|e| e == "*") => {
                if list.get_ref().len() > 1 {
                    errs.at(
                        list.span(),
                        format!("webhook \"{}\": \"*\" already means every test; list ids or \"*\" alone", w.name),
                    );
                    ok = false;
                }
                None
            }
            Some(list) => {
                let mut ids = BTreeSet::new();
                for id in list.get_ref() {
                    match ExperimentId::parse(id).ok().filter(|id| known.contains(id)) {
                        Some(id) => {
                            ids.insert(id);
                        }
                        None => {
                            errs.at(list.span(), format!("webhook \"{}\": no test has the id {id:?}; use a test's id, or \"*\" for every test", w.name));
                            ok = false;
                        }
                    }
                }
                Some(ids)
            }
        };
        let secret = w.secret_env.get_ref();
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            errs.at(
                w.secret_env.span(),
                format!("webhook \"{}\": secret_env names the environment variable that holds the secret, e.g. \"OFFERLAB_WEBHOOK_SECRET_GROWTH\" (letters, digits and _)", w.name),
            );
            ok = false;
        }
        if let (true, Some(url)) = (ok, url) {
            hooks.push(Webhook { name: w.name, url, format: w.format, on, experiments, secret_env: secret.clone() });
        }
    }
    if errs.errors.is_empty() {
        Ok(hooks)
    } else {
        Err(errs.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<ExperimentId> {
        ["cart-protection-copy"].iter().map(|s| ExperimentId::parse(s).unwrap()).collect()
    }

    #[test]
    fn a_webhook_parses_with_its_defaults() {
        let text = r#"
[[webhook]]
name = "growth-team"
url = "https://hooks.example.com/services/T000/B000/XXX"
on = ["validated_winner", "guardrail_harmed"]
secret_env = "OFFERLAB_WEBHOOK_SECRET_GROWTH"
"#;
        let hooks = parse_notify("notify.toml", text, &known()).unwrap();
        assert_eq!(hooks.len(), 1);
        let h = &hooks[0];
        assert_eq!((h.format, h.experiments.is_none()), (WebhookFormat::Json, true));
        assert_eq!(h.shown_url(), "https://hooks.example.com", "the path is a secret");
        let id = ExperimentId::parse("any-test").unwrap();
        assert!(h.wants(&id, VerdictCode::ValidatedWinner));
        assert!(!h.wants(&id, VerdictCode::CollectingData));
    }

    #[test]
    fn every_mistake_is_named_at_its_line() {
        let text = r#"
[[webhook]]
name = "a"
url = "ftp://example.com/x"
on = ["validated_winer"]
experiments = ["no-such-test"]
secret_env = "S"
"#;
        let errors = parse_notify("notify.toml", text, &known()).unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{said:#?}");
        assert!(said[0].contains("notify.toml:4") && said[0].contains("http:// or https://"), "{said:#?}");
        assert!(
            said[1].contains("notify.toml:5") && said[1].contains("\"validated_winer\" is not a verdict code"),
            "{said:#?}"
        );
        assert!(said[2].contains("notify.toml:6") && said[2].contains("no test has the id"), "{said:#?}");
    }
}
