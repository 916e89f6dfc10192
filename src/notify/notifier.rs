//! The service's notification tasks: one re-evaluates every running test's
//! verdict on a schedule (and after a reload) and records each change with
//! its deliveries; one sends the deliveries that are due, signed, and
//! records what each try got.
//!
//! The first verdict ever recorded for a test is its starting point, not a
//! change: adding `notify.toml` to a running shop does not send a message
//! per test. After that a change is recorded once, even across restarts and
//! replicas (the store compares and records in one step), so each webhook
//! gets it once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::delivery::{next_try, AfterTry, Delivery, LastDelivery, Tried};
use super::message;
use crate::experiment::{Status, Webhook};
use crate::http::state::AppState;
use crate::store::StoreError;

/// How long a replica holds a delivery it is trying: longer than one try
/// ([`TRY_TIMEOUT`]); once it runs out (the replica died), another takes it.
pub const LEASE: Duration = Duration::from_secs(15);
/// Longest one try waits for the receiver's answer.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the sender looks for due deliveries when nothing woke it
/// (another replica's, or a retry's time come).
const POLL: Duration = Duration::from_secs(1);

pub struct Notifier {
    state: Arc<AppState>,
    every: Duration,
    /// The base of `report_url` (`serve --public-url`).
    public_url: String,
    client: reqwest::Client,
    /// This replica, as its leases name it.
    holder: String,
    /// Woken when a verdict change adds deliveries.
    added: tokio::sync::Notify,
}

/// The client every try goes through: at most [`TRY_TIMEOUT`] per try.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TRY_TIMEOUT)
        .user_agent(concat!("offerlab/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with default TLS settings builds")
}

impl Notifier {
    pub fn new(state: Arc<AppState>, every: Duration, public_url: String) -> Notifier {
        let holder = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        Notifier { state, every, public_url, client: client(), holder, added: tokio::sync::Notify::new() }
    }

    /// Starts both tasks on the current runtime; abort the handles to stop
    /// them (a try cut short is tried again: its delivery stays stored).
    pub fn start(self: Arc<Self>) -> [tokio::task::JoinHandle<()>; 2] {
        let evaluator = self.clone();
        let evaluate = tokio::spawn(async move {
            loop {
                match evaluator.evaluate().await {
                    Ok(()) => evaluator.state.metrics.observe_evaluation(),
                    Err(e) => {
                        tracing::warn!(error = %e, "re-evaluating verdicts for notifications failed; trying again later")
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(evaluator.every) => {}
                    () = evaluator.state.reloaded.notified() => {}
                }
            }
        });
        let deliver = tokio::spawn(async move {
            loop {
                match self.deliver_one().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "reading due deliveries failed; trying again shortly"),
                }
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    () = self.added.notified() => {}
                }
            }
        });
        [evaluate, deliver]
    }

    /// Compares every running test's verdict with the one recorded, and
    /// records each change with a delivery per webhook that wants it.
    pub async fn evaluate(&self) -> Result<(), StoreError> {
        let catalog = self.state.catalog();
        let store = &self.state.store;
        let seen = store.verdicts_seen().await?;
        let now = self.state.clock.now();
        let mut added = false;
        for exp in catalog.experiments().filter(|e| e.status == Status::Running) {
            let report = self.state.verdict(&catalog, exp, now).await?;
            let code = report.verdict.code.as_str();
            let before = seen.get(&exp.id).map(String::as_str);
            if before == Some(code) {
                continue;
            }
            let deliveries: Vec<Delivery> = match before {
                None => Vec::new(),
                Some(previous) => catalog
                    .webhooks()
                    .iter()
                    .filter(|w| w.wants(&exp.id, report.verdict.code))
                    .map(|w| Delivery {
                        id: format!("{:032x}", rand::random::<u128>()),
                        webhook: w.name.clone(),
                        experiment: exp.id.clone(),
                        name: exp.name.clone(),
                        code: code.to_owned(),
                        sentence: report.verdict.sentence.clone(),
                        winner: report.verdict.winner.clone(),
                        previous_code: Some(previous.to_owned()),
                        as_of: report.as_of,
                        created_at: Utc::now(),
                        attempts: 0,
                        next_at: Utc::now(),
                        last: None,
                    })
                    .collect(),
            };
            if store.advance_verdict(&exp.id, before, code, &deliveries).await? {
                tracing::info!(experiment = %exp.id, from = before, to = code, deliveries = deliveries.len(), "verdict changed");
                added |= !deliveries.is_empty();
            }
        }
        if added {
            self.added.notify_one();
        }
        Ok(())
    }

    /// Tries the delivery due soonest, if one is due: `true` when it did.
    async fn deliver_one(&self) -> Result<bool, StoreError> {
        let store = &self.state.store;
        let Some(mut d) = store.take_delivery(Utc::now(), &self.holder, LEASE).await? else { return Ok(false) };
        let catalog = self.state.catalog();
        let hook = catalog.webhooks().iter().find(|w| w.name == d.webhook);
        let tried = match hook {
            Some(hook) => send(&self.client, hook, &d, &self.public_url).await,
            None => Tried::Refused(0),
        };
        let shown = hook.map_or_else(|| "(no longer in notify.toml)".to_owned(), Webhook::shown_url);
        d.attempts += 1;
        let done = |d: &Delivery, delivered: bool, outcome: String| {
            AfterTry::Done(LastDelivery {
                webhook: d.webhook.clone(),
                delivery_id: d.id.clone(),
                experiment: d.experiment.clone(),
                code: d.code.clone(),
                at: Utc::now(),
                attempts: d.attempts,
                delivered,
                outcome,
            })
        };
        let (after, outcome) = match tried {
            Tried::Delivered(status) => {
                tracing::info!(webhook = %d.webhook, url = %shown, delivery = %d.id, status, "delivered");
                (done(&d, true, status.to_string()), "delivered")
            }
            Tried::Refused(status) => {
                let why = if hook.is_none() {
                    "the webhook is no longer in notify.toml".to_owned()
                } else {
                    status.to_string()
                };
                tracing::warn!(webhook = %d.webhook, url = %shown, delivery = %d.id, outcome = %why, "refused; not tried again");
                (done(&d, false, why), "refused")
            }
            Tried::Again { outcome, after } => {
                match next_try(d.created_at, d.attempts, after, Utc::now(), rand::random()) {
                    Some(at) => {
                        tracing::warn!(webhook = %d.webhook, url = %shown, delivery = %d.id, %outcome, next = %at, "not delivered; trying again");
                        d.next_at = at;
                        d.last = Some(outcome);
                        (AfterTry::Again(d.clone()), "retried")
                    }
                    None => {
                        tracing::error!(webhook = %d.webhook, url = %shown, delivery = %d.id, %outcome, "not delivered within 24 h; given up");
                        (done(&d, false, format!("given up after 24 h: {outcome}")), "given_up")
                    }
                }
            }
        };
        self.state.metrics.observe_delivery(&d.webhook, outcome);
        store.tried_delivery(&self.holder, &d.id, after).await?;
        Ok(true)
    }
}

/// One signed try of `d` to `hook`, its report at `public_url`.
pub async fn send(client: &reqwest::Client, hook: &Webhook, d: &Delivery, public_url: &str) -> Tried {
    let Ok(secret) = std::env::var(&hook.secret_env) else {
        return Tried::network("its secret variable is not set");
    };
    let sent_at = Utc::now();
    let report_url = format!("{}/experiments/{}", public_url.trim_end_matches('/'), d.experiment);
    let body = message::body(hook.format, d, &report_url, sent_at);
    let timestamp = sent_at.timestamp();
    let sent = client
        .post(hook.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Offerlab-Delivery", &d.id)
        .header("X-Offerlab-Timestamp", timestamp.to_string())
        .header("X-Offerlab-Signature", message::signature(secret.as_bytes(), timestamp, &body))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let retry_after = answer.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok());
            Tried::answer(answer.status().as_u16(), retry_after)
        }
        // Without the URL: a Slack webhook's path is its secret.
        Err(e) => Tried::network(&e.without_url().to_string()),
    }
}
