//! Klavi's API events (seed 002): link, consent and product events, each body a JSON array of
//! one `{partnerAppId, eventId, eventType:"api", eventName, eventTime, payload, externalInfo}`.
//! The seed's page lost its punctuation and case to a scraper; the names here are those of
//! DESIGN.md section 3 and the restored fixtures. Signed with `X-Klavi-Signature`, the hex
//! HMAC-SHA256 of the body under the endpoint's Klavi secret, next to `X-Klavi-Timestamp`.

use std::collections::BTreeMap;

use freshet_model::{
    EventType,
    events::{ConsentChanged, Event, EventData, LinkCreated, Permission, ProductEvent},
};
use ring::hmac;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Context, Dialect, RenderError, Rendered, wire};

pub(crate) const EVENT_TYPES: &[EventType] = &[
    EventType::LinkCreated,
    EventType::ConsentAuthorised,
    EventType::ConsentError,
    EventType::ConsentRejected,
    EventType::ConsentExpired,
    EventType::ConsentRevoked,
    EventType::ConsentDeletedByUser,
    EventType::ProductRequestReceived,
    EventType::ProductGeneratedSuccess,
    EventType::ProductGeneratedFailed,
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KlaviEvent<'a> {
    partner_app_id: &'a str,
    event_id: &'a str,
    event_type: &'static str,
    event_name: &'static str,
    event_time: String,
    payload: Payload<'a>,
    external_info: Map<String, Value>,
}

/// One shape for every event: each event fills the members the seed shows for it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    personal_tax_id: &'a str,
    business_tax_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consents: Option<Consents<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<RequestBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Consents<'a> {
    consent_id: &'a str,
    external_track_id: &'a str,
    institution_code: &'a str,
    permissions_apply: Vec<&'static str>,
    permissions_granted: Vec<&'static str>,
    expire_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestBody<'a> {
    tax_id: &'a str,
    institution_code: &'a str,
    link_id: &'a str,
    consent_ids: &'a [String],
    products: &'a [String],
    product_callback_url: &'a BTreeMap<String, String>,
}

pub(crate) fn render(event: &Event, ctx: &Context) -> Result<Rendered, RenderError> {
    let missing = |what| RenderError::Missing {
        dialect: Dialect::Klavi,
        what,
    };
    let partner_app_id = ctx.partner_app_id.ok_or(missing("a partnerAppId"))?;
    let secret = ctx.klavi_secret.ok_or(missing("a signing secret"))?;
    let (payload, external_info) = match (event.event_type, &event.data) {
        (EventType::LinkCreated, EventData::LinkCreated(e)) => link_created(e),
        (t, EventData::Consent(e)) if t != EventType::ConsentExpiring => consent(t, e)?,
        (t, EventData::Product(e)) => product(t, e)?,
        (t, _) => return Err(RenderError::PayloadMismatch(t)),
    };
    let body = serde_json::to_vec(&[KlaviEvent {
        partner_app_id,
        event_id: &event.id,
        event_type: "api",
        event_name: event_name(event.event_type)
            .ok_or(RenderError::PayloadMismatch(event.event_type))?,
        event_time: wire::millis_z(event.created_at)
            .map_err(|_| RenderError::Time(Dialect::Klavi))?,
        payload,
        external_info: external_info.cloned().unwrap_or_default(),
    }])?;
    let signature = klavi_signature(secret, &body);
    Ok(Rendered {
        body,
        headers: vec![
            ("x-klavi-signature", signature),
            (
                "x-klavi-timestamp",
                ctx.sent_at.unix_timestamp().to_string(),
            ),
        ],
    })
}

/// `X-Klavi-Signature`: hex HMAC-SHA256 of the body, keyed with the secret's UTF-8 bytes — the
/// hex signature a receiver recomputes and compares (in constant time) with
/// `X-Klavi-Signature`.
pub fn klavi_signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    wire::hex(hmac::sign(&key, body).as_ref())
}

/// `X-Klavi-Signature` under every active secret: one hex signature per secret, the newest
/// first, space-separated — during a rotation's overlap both, as the Standard Webhooks header
/// carries both. Outside a rotation it is the single signature Klavi's receivers expect.
pub fn klavi_signatures(secrets: &[&str], body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| klavi_signature(s, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any of the space-separated hex signatures of an `X-Klavi-Signature` header is the
/// HMAC of `body` under `secret`, compared in constant time: what a receiver does during a
/// rotation, with the new secret (or the old, until the overlap ends).
pub fn verify_klavi(secret: &str, header: &str, body: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    header
        .split(' ')
        .filter_map(unhex)
        .any(|tag| hmac::verify(&key, body, &tag).is_ok())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn event_name(t: EventType) -> Option<&'static str> {
    Some(match t {
        EventType::LinkCreated => "link_created",
        EventType::ConsentAuthorised => "consent_authorised",
        EventType::ConsentError => "consent_error",
        EventType::ConsentRejected => "consent_rejected",
        EventType::ConsentExpired => "consent_expired",
        EventType::ConsentRevoked => "consent_revoked",
        EventType::ConsentDeletedByUser => "consent_deleted_by_user",
        EventType::ProductRequestReceived => "product_request_received",
        EventType::ProductGeneratedSuccess => "product_generated_success",
        EventType::ProductGeneratedFailed => "product_generated_failed",
        _ => return None,
    })
}

type Parts<'a> = (Payload<'a>, Option<&'a Map<String, Value>>);

fn tax_ids(c: &freshet_model::events::CustomerSnapshot) -> (&str, &str) {
    // Klavi sends "" for the tax id a customer does not have.
    (
        c.personal_tax_id.as_deref().unwrap_or(""),
        c.business_tax_id.as_deref().unwrap_or(""),
    )
}

fn base(c: &freshet_model::events::CustomerSnapshot) -> Payload<'_> {
    let (personal_tax_id, business_tax_id) = tax_ids(c);
    Payload {
        personal_tax_id,
        business_tax_id,
        link_id: None,
        consents: None,
        request_id: None,
        request_body: None,
        product: None,
        failure_reason: None,
    }
}

fn link_created(e: &LinkCreated) -> Parts<'_> {
    let payload = Payload {
        link_id: Some(&e.link.id),
        ..base(&e.customer)
    };
    (payload, e.customer.external_info.as_ref())
}

fn consent(t: EventType, e: &ConsentChanged) -> Result<Parts<'_>, RenderError> {
    let c = &e.consent;
    // An expired consent grants nothing any more, and Klavi's example says so; a revoked or
    // deleted one keeps what it had granted, as Klavi's examples show.
    let granted: &[Permission] = match t {
        EventType::ConsentExpired => &[],
        _ => &c.permissions_granted,
    };
    let consents = Consents {
        consent_id: &c.id,
        external_track_id: c.external_track_id.as_deref().unwrap_or(""),
        institution_code: &e.provider.code,
        permissions_apply: c.permissions_requested.iter().map(permission).collect(),
        permissions_granted: granted.iter().map(permission).collect(),
        expire_at: c
            .expires_at
            .map(wire::millis_z)
            .transpose()
            .map_err(|_| RenderError::Time(Dialect::Klavi))?,
    };
    let payload = Payload {
        link_id: Some(&e.link.id),
        consents: Some(consents),
        ..base(&e.customer)
    };
    Ok((payload, e.customer.external_info.as_ref()))
}

fn product(t: EventType, e: &ProductEvent) -> Result<Parts<'_>, RenderError> {
    let r = &e.request;
    let mut payload = Payload {
        request_id: Some(&r.id),
        ..base(&e.customer)
    };
    let named_product = || {
        e.product.as_deref().ok_or(RenderError::Missing {
            dialect: Dialect::Klavi,
            what: "the product a product_generated_* event is about",
        })
    };
    match t {
        EventType::ProductRequestReceived => {
            let (personal, business) = tax_ids(&e.customer);
            // The tax id the request was made for; the customer's when it named none.
            let tax_id = r.tax_id.as_deref().unwrap_or(if personal.is_empty() {
                business
            } else {
                personal
            });
            payload.request_body = Some(RequestBody {
                tax_id,
                institution_code: &r.institution_code,
                link_id: &r.link_id,
                consent_ids: &r.consent_ids,
                products: &r.products,
                product_callback_url: &r.product_callback_urls,
            });
        }
        EventType::ProductGeneratedSuccess => payload.product = Some(named_product()?),
        EventType::ProductGeneratedFailed => {
            payload.product = Some(named_product()?);
            payload.failure_reason = Some(e.failure_reason.as_deref().unwrap_or(""));
        }
        _ => return Err(RenderError::PayloadMismatch(t)),
    }
    Ok((payload, e.customer.external_info.as_ref()))
}

/// Open Finance Brasil's permission groups, upper snake case as Klavi sends them.
fn permission(p: &Permission) -> &'static str {
    match p {
        Permission::RegistrationAll => "REGISTRATION_ALL",
        Permission::AccountsAll => "ACCOUNTS_ALL",
        Permission::CreditCardsAll => "CREDIT_CARDS_ALL",
        Permission::CreditOperationsAll => "CREDIT_OPERATIONS_ALL",
        Permission::InvestmentsAll => "INVESTMENTS_ALL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answer computed outside this code:
    /// `python3 -c 'import hmac,hashlib; print(hmac.new(b"klavi-secret", b"[{\"eventType\":\"api\"}]", hashlib.sha256).hexdigest())'`
    #[test]
    fn signature_is_hex_hmac_sha256_of_the_body() {
        assert_eq!(
            klavi_signature("klavi-secret", br#"[{"eventType":"api"}]"#),
            KNOWN_ANSWER
        );
        assert_ne!(
            klavi_signature("klavi-secret", br#"[{"eventType":"apx"}]"#),
            KNOWN_ANSWER
        );
        assert_ne!(
            klavi_signature("other-secret", br#"[{"eventType":"api"}]"#),
            KNOWN_ANSWER
        );
    }

    /// During a rotation the header carries both signatures and either secret verifies it;
    /// a tampered body, a foreign secret or a mangled header does not.
    #[test]
    fn either_secret_verifies_a_rotation_header() {
        let body = br#"[{"eventType":"api"}]"#;
        let both = klavi_signatures(&["klavi-secret", "old-secret"], body);
        assert_eq!(both.split(' ').next(), Some(KNOWN_ANSWER));
        assert!(verify_klavi("klavi-secret", &both, body));
        assert!(verify_klavi("old-secret", &both, body));
        assert!(!verify_klavi("other-secret", &both, body));
        assert!(!verify_klavi(
            "klavi-secret",
            &both,
            br#"[{"eventType":"apx"}]"#
        ));
        assert!(verify_klavi("klavi-secret", KNOWN_ANSWER, body));
        assert!(!verify_klavi("klavi-secret", &KNOWN_ANSWER[1..], body));
        assert!(!verify_klavi("klavi-secret", "", body));
        assert_eq!(klavi_signatures(&["klavi-secret"], body), KNOWN_ANSWER);
    }

    const KNOWN_ANSWER: &str = "d422f3768ed01715f766e7a8a57f99aff07334e2055d4922cca2a06744cd1806";

    #[test]
    fn every_sent_type_has_an_event_name() {
        for t in EVENT_TYPES {
            let name = event_name(*t).unwrap();
            assert_eq!(name, t.as_str().replace('.', "_"));
        }
        assert_eq!(event_name(EventType::ConsentExpiring), None);
    }
}
