//! freshet's own dialect and the Standard Webhooks signing every dialect's deliveries carry.
//!
//! The `standard` body is the envelope `{type, timestamp, data}` with the canonical payload as
//! `data`. Whatever the dialect, the engine signs the rendered body with the endpoint's
//! `whsec_` secret(s) and sends `webhook-id`, `webhook-timestamp` and `webhook-signature`
//! (one `v1,` signature per active secret, space-separated during a rotation), so one verifier
//! — [`verify_standard`] — works for every endpoint.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use freshet_model::events::Event;
use ring::hmac;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{Dialect, RenderError, Rendered};

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    event_type: &'static str,
    timestamp: String,
    data: &'a freshet_model::events::EventData,
}

pub(crate) fn render(event: &Event) -> Result<Rendered, RenderError> {
    let timestamp = event
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|_| RenderError::Time(Dialect::Standard))?;
    let body = serde_json::to_vec(&Envelope {
        event_type: event.event_type.as_str(),
        timestamp,
        data: &event.data,
    })?;
    Ok(Rendered {
        body,
        headers: Vec::new(),
    })
}

/// A new signing secret, `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!("whsec_{}", B64.encode(bytes))
}

/// The Standard Webhooks signature of a message with one secret: `v1,<base64 HMAC-SHA256>`
/// over `msg_id.timestamp.body`.
pub fn standard_signature(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let key = B64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| "the endpoint's secret is not whsec_<base64>".to_string())?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(msg_id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Ok(format!("v1,{}", B64.encode(ctx.sign().as_ref())))
}

/// Why a signed message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing or not text")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the message is {0} s away from now, beyond the tolerance")]
    Stale(i64),
    #[error("no signature matches")]
    NoMatch,
    #[error("{0}")]
    BadSecret(String),
}

/// Verifies a Standard Webhooks message: `header` gives `webhook-id`, `webhook-timestamp`
/// and `webhook-signature` (one or more space-separated `v1,` signatures); any signature made
/// with any of `secrets` passes, and the timestamp must lie within `tolerance` of `now`.
/// What receivers — and `freshet listen` — run on every delivery, in every dialect.
pub fn verify_standard(
    secrets: &[&str],
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: time::Duration,
) -> Result<(), VerifyError> {
    let id = header("webhook-id").ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let ts = header("webhook-timestamp").ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let sigs =
        header("webhook-signature").ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let ts: i64 = ts.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now.unix_timestamp() - ts;
    if skew.abs() > tolerance.whole_seconds() {
        return Err(VerifyError::Stale(skew));
    }
    let message = [id.as_bytes(), b".", ts.to_string().as_bytes(), b".", body].concat();
    let macs: Vec<Vec<u8>> = sigs
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b| B64.decode(b).ok())
        .collect();
    for secret in secrets {
        let key = B64
            .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
            .map_err(|_| VerifyError::BadSecret("a secret is not whsec_<base64>".into()))?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
        // hmac::verify compares in constant time.
        if macs
            .iter()
            .any(|mac| hmac::verify(&key, &message, mac).is_ok())
        {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example.
    #[test]
    fn signature_matches_the_specification_vector() {
        let sig = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    fn headers(id: &'static str, ts: i64, sig: String) -> impl Fn(&str) -> Option<String> {
        move |name| match name {
            "webhook-id" => Some(id.to_string()),
            "webhook-timestamp" => Some(ts.to_string()),
            "webhook-signature" => Some(sig.clone()),
            _ => None,
        }
    }

    /// The specification's vector verifies; tampering, staleness and wrong secrets do not.
    #[test]
    fn verify_accepts_the_specification_vector_and_nothing_else() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let at = OffsetDateTime::from_unix_timestamp(1614265330).unwrap();
        let tol = time::Duration::minutes(5);
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_string();
        let h = headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, sig.clone());
        assert_eq!(verify_standard(&[secret], &h, body, at, tol), Ok(()));
        assert_eq!(
            verify_standard(&[secret], &h, br#"{"test": 2432232315}"#, at, tol),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify_standard(&[new_secret().as_str()], &h, body, at, tol),
            Err(VerifyError::NoMatch)
        );
        let late = at + time::Duration::minutes(6);
        assert!(matches!(
            verify_standard(&[secret], &h, body, late, tol),
            Err(VerifyError::Stale(_))
        ));
        // During a rotation either secret verifies a message carrying both signatures.
        let other = new_secret();
        let both = format!(
            "{} {sig}",
            standard_signature(&other, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap()
        );
        let h2 = headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, both);
        assert_eq!(verify_standard(&[secret], &h2, body, at, tol), Ok(()));
        assert_eq!(
            verify_standard(&[other.as_str()], &h2, body, at, tol),
            Ok(())
        );
        let missing = |_: &str| None;
        assert_eq!(
            verify_standard(&[secret], missing, body, at, tol),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
    }

    #[test]
    fn secrets_are_whsec_with_32_bytes() {
        let s = new_secret();
        assert_eq!(
            B64.decode(s.strip_prefix("whsec_").unwrap()).unwrap().len(),
            32
        );
        assert_ne!(s, new_secret());
        assert!(standard_signature("whsec_!!!", "m", 1, b"").is_err());
    }
}
