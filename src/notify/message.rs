//! What a webhook receives: offerlab's JSON document or a Slack message,
//! and the signature that proves offerlab sent it.
//!
//! The signature is `sha256=` and the hex HMAC-SHA256, keyed with the
//! webhook's secret, of the timestamp, a dot and the body:
//! `HMAC(secret, "{X-Offerlab-Timestamp}.{body}")`. A receiver recomputes it
//! and compares in constant time, and refuses an old timestamp (a replay).

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use super::Delivery;
use crate::analysis::VerdictCode;
use crate::experiment::WebhookFormat;

/// The body of one try of `d`, sent at `sent_at`.
pub fn body(format: WebhookFormat, d: &Delivery, report_url: &str, sent_at: DateTime<Utc>) -> Vec<u8> {
    let value = match format {
        WebhookFormat::Json => json_body(d, report_url, sent_at),
        WebhookFormat::Slack => slack_body(d, report_url),
    };
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

/// `{"delivery_id", "experiment", "name", "verdict": {"code", "sentence",
/// "winner"}, "previous_code", "report_url", "as_of", "sent_at"}`.
pub fn json_body(d: &Delivery, report_url: &str, sent_at: DateTime<Utc>) -> Value {
    json!({
        "delivery_id": d.id,
        "experiment": d.experiment,
        "name": d.name,
        "verdict": { "code": d.code, "sentence": d.sentence, "winner": d.winner },
        "previous_code": d.previous_code,
        "report_url": report_url,
        "as_of": d.as_of,
        "sent_at": sent_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

/// A verdict code as a marketer reads it ("Validated winner").
fn label(code: &str) -> &str {
    match VerdictCode::parse(code) {
        Some(c) => c.label(),
        None => code,
    }
}

/// Text for Slack's `mrkdwn`, where `&`, `<` and `>` are markup.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Slack incoming-webhook message: `text` (the notification's plain
/// fallback) and blocks: a header with the test and verdict, the sentence,
/// and a link to the report with the verdict before.
pub fn slack_body(d: &Delivery, report_url: &str) -> Value {
    let title = format!("{}: {}", d.name, label(&d.code));
    let header: String = title.chars().take(150).collect();
    let was = d.previous_code.as_deref().map(|p| format!(" · was: {}", label(p))).unwrap_or_default();
    json!({
        "text": format!("{}: {}", escaped(&title), escaped(&d.sentence)),
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": header } },
            { "type": "section", "text": { "type": "mrkdwn", "text": escaped(&d.sentence).chars().take(3000).collect::<String>() } },
            { "type": "context", "elements": [
                { "type": "mrkdwn", "text": format!("<{report_url}|Open the report>{}", escaped(&was)) }
            ] }
        ]
    })
}

/// Hex HMAC-SHA256 of the concatenated `parts`, keyed with `secret`.
fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// `X-Offerlab-Signature` of a body sent with `X-Offerlab-Timestamp`
/// `timestamp` (seconds since 1970).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(secret, &[timestamp.to_string().as_bytes(), b".", body]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            id: "d1".into(),
            webhook: "growth-team".into(),
            experiment: "cart-protection-copy".parse().unwrap(),
            name: "Cart <protection> & copy".into(),
            code: "validated_winner".into(),
            sentence: "Ship benefit_copy: +12% acceptance, held over two cycles.".into(),
            winner: Some("benefit_copy".into()),
            previous_code: Some("winner_validating".into()),
            as_of: "2026-11-30".parse().unwrap(),
            created_at: "2026-11-30T12:00:00Z".parse().unwrap(),
            attempts: 0,
            next_at: "2026-11-30T12:00:00Z".parse().unwrap(),
            last: None,
        }
    }

    /// RFC 4231, test case 2.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, b"{}"),
            format!("sha256={}", hmac_hex(b"Jefe", &[b"1700000000.{}"]))
        );
    }

    #[test]
    fn the_json_body_has_the_documented_fields() {
        let sent: DateTime<Utc> = "2026-11-30T12:05:00Z".parse().unwrap();
        let v: Value =
            serde_json::from_slice(&body(WebhookFormat::Json, &delivery(), "http://x/experiments/c", sent)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["as_of", "delivery_id", "experiment", "name", "previous_code", "report_url", "sent_at", "verdict"]
        );
        assert_eq!(v["verdict"]["code"], "validated_winner");
        assert_eq!(v["verdict"]["winner"], "benefit_copy");
        assert_eq!(v["sent_at"], "2026-11-30T12:05:00Z");
    }

    #[test]
    fn the_slack_message_escapes_markup_and_links_the_report() {
        let v = slack_body(&delivery(), "http://x/experiments/c");
        assert!(v["text"].as_str().unwrap().starts_with("Cart &lt;protection&gt; &amp; copy: Validated winner: Ship"));
        assert_eq!(
            v["blocks"][0]["text"]["text"], "Cart <protection> & copy: Validated winner",
            "plain text is not markup"
        );
        let link = v["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert_eq!(link, "<http://x/experiments/c|Open the report> · was: Winner validating");
    }
}
