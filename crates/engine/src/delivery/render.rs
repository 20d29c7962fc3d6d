//! Rendering and signing: which dialects send which event types, and how a claimed delivery
//! becomes a signed request (an [`Outgoing`]) in its endpoint's dialect.
//!
//! The body and the dialect's own headers come from `freshet_dialects::render`, in the
//! endpoint's dialect. On top, every delivery carries the Standard Webhooks headers
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature` with one `v1,` signature per active
//! secret, space-separated during a rotation) over the exact rendered body, so one verifier
//! works for every dialect.
//!
//! `endpoint.test` is freshet's own and no vendor sends it, so a test of a vendor-dialect
//! endpoint gets a body in that vendor's shape with a name no real message has, signed the
//! vendor's way (`freshet_dialects::render_test`), so a test exercises the receiver's parsing
//! and verification the way real events will without looking like one.

use freshet_dialects::{
    Context, Dialect, Rendered, klavi::klavi_signatures, render, render_test, standard_signature,
};
pub use freshet_dialects::{VerifyError, new_secret, verify_standard};
use freshet_model::{
    EventType,
    events::{Event, EventData},
};
use freshet_store::Claim;
use time::OffsetDateTime;

use super::{retry::policy_for, sender::Outgoing};
use crate::signing_keys::KeySet;

/// The names of the dialects that send events of type `t`.
pub fn dialects_sending(t: EventType) -> Vec<&'static str> {
    Dialect::ALL
        .into_iter()
        .filter(|d| d.sends(t))
        .map(Dialect::name)
        .collect()
}

/// The request for one claimed delivery, sent at `now`, Bud-dialect bodies signed with the
/// signing key of `keys`.
pub fn prepare(claim: &Claim, now: OffsetDateTime, keys: &KeySet) -> Result<Outgoing, String> {
    let endpoint = &claim.endpoint;
    // Stable across retries and replays of this (event, endpoint): receivers dedupe on it.
    let msg_id = format!("msg_{}", claim.delivery.id.0.simple());
    let rendered = match &claim.body {
        Some(body) => fixed(body)?,
        None => rendered(claim, &msg_id, now, keys)?,
    };

    let timestamp = now.unix_timestamp();
    let secrets = endpoint.signing_secrets(now);
    let signatures = secrets
        .iter()
        .map(|s| standard_signature(s, &msg_id, timestamp, &rendered.body))
        .collect::<Result<Vec<_>, _>>()?;
    let mut headers = Vec::with_capacity(rendered.headers.len() + 3);
    for (name, value) in rendered.headers {
        set_header(&mut headers, name, value);
    }
    if headers.iter().any(|(n, _)| n == KLAVI_SIGNATURE) {
        // The dialect signs with the current secret; during a rotation's overlap Klavi's
        // header, like the Standard Webhooks one, carries one signature per active secret.
        set_header(
            &mut headers,
            KLAVI_SIGNATURE,
            klavi_signatures(&secrets, &rendered.body),
        );
    }
    set_header(&mut headers, "webhook-id", msg_id);
    set_header(&mut headers, "webhook-timestamp", timestamp.to_string());
    set_header(&mut headers, "webhook-signature", signatures.join(" "));
    Ok(Outgoing {
        url: endpoint.url.clone(),
        body: rendered.body,
        headers,
        timeout: policy_for(&endpoint.dialect, None).timeout,
    })
}

const KLAVI_SIGNATURE: &str = "x-klavi-signature";

/// A body fixed when the delivery was created (a data product for its callback URL): sent as
/// is, as JSON, signed like every other delivery.
fn fixed(body: &serde_json::Value) -> Result<Rendered, String> {
    Ok(Rendered {
        body: serde_json::to_vec(body).map_err(|e| e.to_string())?,
        headers: vec![("content-type", "application/json".to_string())],
    })
}

/// The event rendered in the endpoint's dialect.
fn rendered(
    claim: &Claim,
    msg_id: &str,
    now: OffsetDateTime,
    keys: &KeySet,
) -> Result<Rendered, String> {
    let endpoint = &claim.endpoint;
    let dialect = Dialect::parse(&endpoint.dialect)
        .ok_or_else(|| format!("`{}` is not a dialect", endpoint.dialect))?;
    let stored = &claim.event;
    let event = Event {
        id: stored.id.to_string(),
        event_type: stored.event_type,
        created_at: stored.created_at,
        data: EventData::from_json(stored.event_type, stored.data.clone())
            .map_err(|e| format!("the stored payload does not read back: {e}"))?,
    };
    let partner_app_id = endpoint
        .partner_app_id
        .clone()
        .unwrap_or_else(|| endpoint.application_id.to_string());
    let ctx = Context {
        webhook_id: msg_id,
        sent_at: now,
        security_header: endpoint.security_header.as_deref(),
        partner_app_id: Some(&partner_app_id),
        bud_key: Some(keys.signing()),
        klavi_secret: Some(&endpoint.secret),
    };
    if event.event_type == EventType::EndpointTest {
        render_test(dialect, &event, &ctx)
    } else {
        render(dialect, &event, &ctx)
    }
    .map_err(|e| e.to_string())
}

/// Sets a header once: a later value for the same name replaces the earlier.
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    match headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        Some(existing) => existing.1 = value,
        None => headers.push((name.to_string(), value)),
    }
}

#[cfg(test)]
mod tests {
    use freshet_dialects::{
        BudSigningKey,
        klavi::{klavi_signature, verify_klavi},
        verify_bud,
    };
    use freshet_model::{
        ApplicationId,
        webhooks::{Delivery, DeliveryId, DeliveryStatus, EndpointId, EventId, WebhookEndpoint},
    };
    use freshet_store::StoredEvent;
    use serde_json::{Value, json};
    use time::Duration;

    use super::*;

    fn consent_revoked() -> Value {
        json!({
            "customer": {"id": "c1", "personal_tax_id": "25872252137",
                         "external_info": {"myTraceId": "t-1"}},
            "provider": {"id": "natwest", "name": "Natwest", "code": "NWB", "numeric_id": 1},
            "link": {"id": "l1", "number": 7, "created_at": "2026-11-24T11:00:00Z"},
            "consent": {"id": "k1", "status": "revoked", "permissions_requested": ["accounts_all"],
                        "permissions_granted": ["accounts_all"], "expires_at": null,
                        "external_track_id": "222121", "reconnect_required": false},
            "reason": null
        })
    }

    fn claim(dialect: &str, event_type: EventType, data: Value) -> Claim {
        let now = freshet_model::time::now();
        let app = ApplicationId::new();
        let endpoint = EndpointId::new();
        let event = EventId::new();
        Claim {
            delivery: Delivery {
                id: DeliveryId::new(),
                application_id: app,
                event_id: event,
                endpoint_id: endpoint,
                status: DeliveryStatus::Delivering,
                attempts: 0,
                next_attempt_at: now,
                last_status_code: None,
                last_error: None,
                created_at: now,
                updated_at: now,
            },
            event: StoredEvent {
                id: event,
                application_id: app,
                event_type,
                customer_id: None,
                created_at: now,
                data,
            },
            endpoint: WebhookEndpoint {
                id: endpoint,
                application_id: app,
                url: "http://127.0.0.1:9/hook".into(),
                dialect: dialect.into(),
                event_types: None,
                description: None,
                enabled: true,
                disabled_reason: None,
                ordered: false,
                security_header: Some("Basic dXNlcjpwYXNz".into()),
                partner_app_id: None,
                active_from: now,
                secret: new_secret(),
                previous_secret: Some(new_secret()),
                previous_secret_until: Some(now + Duration::hours(1)),
                retry_schedule: None,
                scheduled_refreshes: false,
                rate_limit: None,
                max_in_flight: None,
                activation: "immediate".into(),
                last_success_at: None,
                failing_since: None,
                created_at: now,
                updated_at: now,
            },
            token: "t".into(),
            lease_until: now + time::Duration::MINUTE,
            body: None,
            ordering_key: None,
        }
    }

    fn header<'a>(out: &'a Outgoing, name: &str) -> Option<&'a str> {
        let mut found = out.headers.iter().filter(|(n, _)| n == name);
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(
            found.next().is_none(),
            "{name} is sent once: {:?}",
            out.headers
        );
        first
    }

    /// Every dialect's request carries the Standard Webhooks headers over its exact body,
    /// with both secrets during a rotation, and no header twice.
    fn assert_standard_signed(c: &Claim, out: &Outgoing) {
        let now = freshet_model::time::now();
        for secret in [
            &c.endpoint.secret,
            c.endpoint.previous_secret.as_ref().unwrap(),
        ] {
            let h = |n: &str| header(out, n).map(str::to_string);
            verify_standard(&[secret], h, &out.body, now, Duration::minutes(5)).unwrap();
        }
        let mut names: Vec<_> = out.headers.iter().map(|(n, _)| n.to_lowercase()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "{:?}", out.headers);
        assert_eq!(header(out, "content-type"), Some("application/json"));
        assert_eq!(header(out, "authorization"), Some("Basic dXNlcjpwYXNz"));
    }

    #[test]
    fn each_dialect_renders_its_body_and_its_signatures() {
        let key = BudSigningKey::generate().unwrap();
        let jwks = freshet_dialects::jwks(std::slice::from_ref(&key));
        let keys = KeySet::single(key);
        let now = freshet_model::time::now();

        let c = claim("standard", EventType::ConsentRevoked, consent_revoked());
        let out = prepare(&c, now, &keys).unwrap();
        assert_standard_signed(&c, &out);
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["type"], "consent.revoked");

        let c = claim("bud", EventType::ConsentRevoked, consent_revoked());
        let out = prepare(&c, now, &keys).unwrap();
        assert_standard_signed(&c, &out);
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["data"]["event"], "open_banking.consent.revoked");
        let claims = verify_bud(
            &jwks,
            header(&out, "x-signing-id").unwrap(),
            header(&out, "x-signature").unwrap(),
            &out.body,
        )
        .unwrap();
        assert_eq!(Some(claims.jti.as_str()), header(&out, "webhook-id"));

        let mut c = claim("klavi", EventType::ConsentRevoked, consent_revoked());
        let out = prepare(&c, now, &keys).unwrap();
        assert_standard_signed(&c, &out);
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body[0]["eventName"], "consent_revoked");
        assert_eq!(
            body[0]["partnerAppId"],
            c.endpoint.application_id.to_string()
        );
        // The claim's endpoint is mid-rotation: one signature per secret, the new one first.
        let klavi = header(&out, "x-klavi-signature").unwrap();
        assert_eq!(
            klavi,
            format!(
                "{} {}",
                klavi_signature(&c.endpoint.secret, &out.body),
                klavi_signature(c.endpoint.previous_secret.as_ref().unwrap(), &out.body)
            )
        );
        for secret in [
            &c.endpoint.secret,
            c.endpoint.previous_secret.as_ref().unwrap(),
        ] {
            assert!(verify_klavi(secret, klavi, &out.body));
        }
        c.endpoint.previous_secret_until = Some(now - Duration::seconds(1));
        let out = prepare(&c, now, &keys).unwrap();
        assert_eq!(
            header(&out, "x-klavi-signature"),
            Some(klavi_signature(&c.endpoint.secret, &out.body).as_str()),
            "one signature once the overlap ended"
        );
        c.endpoint.partner_app_id = Some("12345678".into());
        let out = prepare(&c, now, &keys).unwrap();
        let body: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body[0]["partnerAppId"], "12345678");
    }

    #[test]
    fn vendor_endpoints_are_tested_in_their_vendors_shape_signed_their_way() {
        let key = BudSigningKey::generate().unwrap();
        let jwks = freshet_dialects::jwks(std::slice::from_ref(&key));
        let keys = KeySet::single(key);
        let now = freshet_model::time::now();
        let test = json!({"endpoint_id": "e1", "data": {"hello": "world"}});
        for dialect in Dialect::ALL {
            let c = claim(dialect.name(), EventType::EndpointTest, test.clone());
            let out = prepare(&c, now, &keys).unwrap();
            assert_standard_signed(&c, &out);
            let body: Value = serde_json::from_slice(&out.body).unwrap();
            let hello = match dialect {
                Dialect::Standard => &body["data"]["data"],
                Dialect::Bud => &body["data"],
                Dialect::Klavi => &body[0]["payload"]["data"],
                Dialect::Yodlee => &body["event"]["data"]["data"],
                Dialect::Tatra => &json!({"hello": "world"}),
            };
            assert_eq!(hello["hello"], "world", "{dialect}: {body}");
            let bud = header(&out, "x-signature");
            let klavi = header(&out, "x-klavi-signature");
            match dialect {
                Dialect::Bud => {
                    verify_bud(
                        &jwks,
                        header(&out, "x-signing-id").unwrap(),
                        bud.unwrap(),
                        &out.body,
                    )
                    .unwrap();
                }
                Dialect::Klavi => {
                    for secret in [
                        &c.endpoint.secret,
                        c.endpoint.previous_secret.as_ref().unwrap(),
                    ] {
                        assert!(verify_klavi(secret, klavi.unwrap(), &out.body));
                    }
                    assert!(header(&out, "x-klavi-timestamp").is_some());
                }
                _ => assert_eq!((bud, klavi), (None, None), "{dialect}"),
            }
        }
    }

    #[test]
    fn what_a_dialect_does_not_send_is_an_error_not_a_delivery() {
        let keys = KeySet::single(BudSigningKey::generate().unwrap());
        let now = freshet_model::time::now();
        let err = prepare(
            &claim("tatra", EventType::ConsentRevoked, consent_revoked()),
            now,
            &keys,
        )
        .unwrap_err();
        assert!(err.contains("does not send"), "{err}");
        let err = prepare(
            &claim("plaid", EventType::ConsentRevoked, consent_revoked()),
            now,
            &keys,
        )
        .unwrap_err();
        assert!(err.contains("not a dialect"), "{err}");
        assert_eq!(
            dialects_sending(EventType::ConsentRevoked),
            ["standard", "bud", "klavi"]
        );
        assert_eq!(dialects_sending(EventType::EndpointDisabled), ["standard"]);
    }
}
