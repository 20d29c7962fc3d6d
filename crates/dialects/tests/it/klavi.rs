//! Seed 002 (Klavi API events): the ten examples, restored in the fixtures, each a JSON array of
//! one event; and the hex HMAC-SHA256 signature over the body.

use std::collections::BTreeMap;

use freshet_dialects::{Context, Dialect, klavi::klavi_signature};
use freshet_model::{
    ConsentStatus, EventType,
    events::{
        ConsentChanged, ConsentSnapshot, CustomerSnapshot, Event, EventData, LinkCreated,
        Permission, ProductEvent, ProductRequestSnapshot,
    },
};
use ring::hmac;
use serde_json::json;
use time::macros::datetime;

use crate::support::*;

pub const FIXTURES: &[&str] = &[
    "seed-002-klavi-link-created.json",
    "seed-002-klavi-consent-authorised.json",
    "seed-002-klavi-consent-error.json",
    "seed-002-klavi-consent-rejected.json",
    "seed-002-klavi-consent-expired.json",
    "seed-002-klavi-consent-revoked.json",
    "seed-002-klavi-consent-deleted-by-user.json",
    "seed-002-klavi-product-request-received.json",
    "seed-002-klavi-product-generated-success.json",
    "seed-002-klavi-product-generated-failed.json",
];

const PARTNER_APP_ID: &str = "12345678";
const SECRET: &str = "klavi-endpoint-secret";
const LINK: &str = "ed812-81fcec-7ec55-7aa7d29-2a3188b75";
const CONSENT: &str = "at932-61fc6c-0ec02-9fa7d29-2b3188b78";
const CHECKING: &str = "pf_checking_account";
const CREDIT_CARD: &str = "pf_credit_card";

fn klavi_customer() -> CustomerSnapshot {
    let info = json!({"myTraceId": "yourTraceId-1", "myUuid": "yourUuid-1"});
    CustomerSnapshot {
        id: "0192f0c2-0000-7000-8000-000000000001".into(),
        personal_tax_id: Some("25872252137".into()),
        business_tax_id: None,
        external_info: info.as_object().cloned(),
        ..Default::default()
    }
}

fn klavi_event(event_type: EventType, data: EventData) -> Event {
    event(
        "1495468585434-0e73d1719173766fe4dfe1a8",
        event_type,
        datetime!(2022-06-25 20:08:17.848 UTC),
        data,
    )
}

fn link_created() -> Event {
    klavi_event(
        EventType::LinkCreated,
        EventData::LinkCreated(LinkCreated {
            customer: klavi_customer(),
            provider: provider("santander-br", "Santander Brasil", "033", 33),
            link: link(LINK, 7, datetime!(2022-06-25 20:08:17.848 UTC)),
        }),
    )
}

fn consent(event_type: EventType, status: ConsentStatus, granted: &[Permission]) -> Event {
    use Permission::*;
    klavi_event(
        event_type,
        EventData::Consent(ConsentChanged {
            customer: klavi_customer(),
            provider: provider("santander-br", "Santander Brasil", "033", 33),
            link: link(LINK, 7, datetime!(2022-06-25 20:08:17.848 UTC)),
            consent: ConsentSnapshot {
                id: CONSENT.into(),
                status,
                permissions_requested: vec![
                    RegistrationAll,
                    AccountsAll,
                    CreditCardsAll,
                    CreditOperationsAll,
                    InvestmentsAll,
                ],
                permissions_granted: granted.to_vec(),
                expires_at: Some(datetime!(2024-06-25 20:08:17.848 UTC)),
                external_track_id: Some("222121".into()),
                reconnect_required: false,
            },
            reason: None,
        }),
    )
}

fn product(event_type: EventType, product: Option<&str>, failure: Option<&str>) -> Event {
    let callbacks = BTreeMap::from([
        (
            CHECKING.to_string(),
            "https://www.yourdomain.com/checking/yourpath".to_string(),
        ),
        (
            CREDIT_CARD.to_string(),
            "https://www.yourdomain.com/creditcard/yourpath".to_string(),
        ),
    ]);
    klavi_event(
        event_type,
        EventData::Product(ProductEvent {
            customer: klavi_customer(),
            request: ProductRequestSnapshot {
                id: "766fe4dfe1a8".into(),
                tax_id: Some("12345678901".into()),
                institution_code: "033".into(),
                link_id: LINK.into(),
                consent_ids: strings(&[CONSENT]),
                products: strings(&[CHECKING, CREDIT_CARD]),
                product_callback_urls: callbacks,
            },
            product: product.map(String::from),
            failure_reason: failure.map(String::from),
        }),
    )
}

/// The canonical event behind each fixture, in [`FIXTURES`] order.
fn cases() -> Vec<Event> {
    use ConsentStatus as S;
    use EventType as T;
    use Permission::*;
    let granted = [RegistrationAll, AccountsAll];
    vec![
        link_created(),
        consent(T::ConsentAuthorised, S::Authorised, &granted),
        consent(T::ConsentError, S::Error, &[]),
        consent(T::ConsentRejected, S::Rejected, &[]),
        consent(T::ConsentExpired, S::Expired, &[]),
        consent(T::ConsentRevoked, S::Revoked, &granted),
        consent(T::ConsentDeletedByUser, S::DeletedByUser, &granted),
        product(T::ProductRequestReceived, None, None),
        product(T::ProductGeneratedSuccess, Some(CHECKING), None),
        product(
            T::ProductGeneratedFailed,
            Some(CHECKING),
            Some("no checking account"),
        ),
    ]
}

fn ctx() -> Context<'static> {
    Context {
        partner_app_id: Some(PARTNER_APP_ID),
        klavi_secret: Some(SECRET),
        ..Context::new(WEBHOOK_ID, SENT_AT)
    }
}

#[test]
fn every_example_matches_the_seed() {
    let cases = cases();
    assert_eq!(cases.len(), FIXTURES.len());
    for (name, event) in FIXTURES.iter().zip(&cases) {
        let (body, _) = render_json(Dialect::Klavi, event, &ctx());
        assert_json_eq(&body, &fixture(name), name);
    }
}

/// The receiver recomputes the HMAC over the raw body with its secret.
#[test]
fn the_signature_is_the_hex_hmac_of_the_exact_body() {
    for event in cases() {
        let (_, rendered) = render_json(Dialect::Klavi, &event, &ctx());
        let sig = rendered.header("x-klavi-signature").unwrap();
        assert_eq!(sig.len(), 64);
        let mac = (0..32)
            .map(|i| u8::from_str_radix(&sig[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>();
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
        hmac::verify(&key, &rendered.body, &mac).unwrap();
        assert!(hmac::verify(&key, b"[]", &mac).is_err());
        assert_eq!(sig, klavi_signature(SECRET, &rendered.body));
        assert_eq!(
            rendered.header("x-klavi-timestamp"),
            Some(SENT_AT.unix_timestamp().to_string().as_str())
        );
    }
}

/// A customer with neither tax id nor external info: Klavi's empty strings and object, and the
/// product request's tax id falls back to the customer's.
#[test]
fn absent_customer_fields_render_empty() {
    let mut event = product(EventType::ProductRequestReceived, None, None);
    let EventData::Product(p) = &mut event.data else {
        unreachable!()
    };
    p.customer.external_info = None;
    p.customer.personal_tax_id = None;
    p.customer.business_tax_id = Some("11222333000181".into());
    p.request.tax_id = None;
    let (body, _) = render_json(Dialect::Klavi, &event, &ctx());
    assert_eq!(body[0]["externalInfo"], json!({}));
    assert_eq!(body[0]["payload"]["personalTaxId"], "");
    assert_eq!(body[0]["payload"]["businessTaxId"], "11222333000181");
    assert_eq!(body[0]["payload"]["requestBody"]["taxId"], "11222333000181");
}

/// freshet's expired consent still records what it had granted; Klavi's `consent_expired` says
/// an expired consent grants nothing, while a revoked one keeps its grant, as the seed shows.
#[test]
fn an_expired_consent_grants_nothing() {
    use Permission::*;
    let granted = [RegistrationAll, AccountsAll];
    let expired = consent(EventType::ConsentExpired, ConsentStatus::Expired, &granted);
    let (body, _) = render_json(Dialect::Klavi, &expired, &ctx());
    let consents = &body[0]["payload"]["consents"];
    assert_eq!(consents["permissionsGranted"], json!([]));
    assert_eq!(consents["permissionsApply"].as_array().unwrap().len(), 5);
    let revoked = consent(EventType::ConsentRevoked, ConsentStatus::Revoked, &granted);
    let (body, _) = render_json(Dialect::Klavi, &revoked, &ctx());
    assert_eq!(
        body[0]["payload"]["consents"]["permissionsGranted"],
        json!(["REGISTRATION_ALL", "ACCOUNTS_ALL"])
    );
}
