//! Seed 000 (Bud Connect): the two `open_banking.v2.refresh.completed` examples, and the
//! ES256 signature a receiver checks against the JWKS.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use freshet_dialects::{BudSigningKey, Context, Dialect, jwks, render, verify_bud};
use freshet_model::{
    ConsentStatus, EventType, ResultCode,
    events::{
        ConsentChanged, ConsentDetail, ConsentSnapshot, Event, EventData, RefreshCompleted,
        RefreshTrigger, SubTaskSnapshot, TaskStatus,
    },
};
use ring::{
    digest,
    signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey},
};
use serde_json::{Value, json};
use time::macros::datetime;

use crate::support::*;

pub const FIXTURES: &[&str] = &[
    "seed-000-bud-refresh-completed-success.json",
    "seed-000-bud-refresh-completed-failed.json",
];

const CUSTOMER: &str = "49d6a33b-7e3e-4052-96cb-04b82fcbdb2f";
const TASK: &str = "030d4a8c-e3b3-4956-8d86-ce3f450c3522";
const NATWEST_CONSENT: &str = "d2e6af8d-ee4b-47ae-b31b-c29c65d43104";
const LLOYDS_CONSENT: &str = "65f4ea18-47f2-4bb3-97c3-a01755df233f";
const LLOYDS_ACCOUNTS: &[&str] = &[
    "082f6378-0d6b-4e86-8b2d-4fe9562bdd20",
    "27c633ee-988d-4f08-a149-f86257f8d0d9",
    "2c252bbe-3c46-4986-ab7e-66691e906098",
    "4d283655-524f-416f-ad1f-46ea87a39c72",
    "77a79027-00d5-48f9-9a58-d377029befc7",
    "a58d1702-e170-4184-ab55-d96377bb36d0",
    "bde9f97c-b124-4b68-a53f-c3b4547a36ea",
    "bfc1b2a1-047e-4eb0-93c9-8fea39124fa9",
    "c5814a06-4f6d-4e68-9eaf-4263da8d978b",
    "d558d16a-d746-4d11-bd6a-b038f54db392",
    "f1e2a9be-c870-4980-be27-b2fbf4781c15",
];

/// One bank's part of the seed's task; `details` lists its consent's expiry, as the success
/// example does and the failure example does not.
fn bank(
    task_id: &str,
    name: &str,
    accounts: &[&str],
    consent: &str,
    result: ResultCode,
    details: bool,
) -> SubTaskSnapshot {
    let provider = provider(&name.to_lowercase(), name, "", 0);
    let mut s = sub_task(
        task_id,
        provider,
        link("l", 1, datetime!(2026-01-01 0:00 UTC)),
    );
    s.status = if result == ResultCode::Success {
        TaskStatus::Completed
    } else {
        TaskStatus::Failed
    };
    s.result = Some(result);
    s.reconnect_required = result.requires_reconnect();
    s.account_ids = strings(accounts);
    s.consent_ids = strings(&[consent]);
    s.consent_details = details.then(|| {
        vec![ConsentDetail {
            id: consent.to_string(),
            expiration_date: Some(datetime!(2026-09-30 15:00 UTC)),
        }]
    });
    s
}

fn refresh_completed(natwest: ResultCode, details: bool) -> Event {
    let sub_tasks = vec![
        bank(
            "030d4439-6ed5-480e-943e-827a812a45c5",
            "Natwest",
            &["d607d0da-fb58-497f-ac51-d70f309be304"],
            NATWEST_CONSENT,
            natwest,
            details,
        ),
        bank(
            "030dabd0-7e5d-4b69-afd8-e747f119b049",
            "Lloyds",
            LLOYDS_ACCOUNTS,
            LLOYDS_CONSENT,
            ResultCode::Success,
            details,
        ),
    ];
    // DESIGN.md: Completed/success only if every sub-task succeeded; otherwise Failed with the
    // first failing sub-task's result.
    let first_failure = sub_tasks
        .iter()
        .filter_map(|s| s.result)
        .find(|r| *r != ResultCode::Success);
    let data = RefreshCompleted {
        customer: customer(CUSTOMER),
        task_id: TASK.to_string(),
        trigger: RefreshTrigger::Manual,
        status: if first_failure.is_some() {
            TaskStatus::Failed
        } else {
            TaskStatus::Completed
        },
        result: first_failure.unwrap_or(ResultCode::Success),
        has_new_transactions: false,
        sub_tasks,
    };
    event(
        "0192f0c2-7a3e-7c4b-9d2e-5f1a2b3c4d5e",
        EventType::RefreshCompleted,
        datetime!(2026-03-01 12:00 UTC),
        EventData::RefreshCompleted(data),
    )
}

fn golden(name: &str, event: &Event) {
    let key = BudSigningKey::generate().unwrap();
    let ctx = Context {
        bud_key: Some(&key),
        ..Context::new(WEBHOOK_ID, SENT_AT)
    };
    let (body, rendered) = render_json(Dialect::Bud, event, &ctx);
    assert_json_eq(&body, &fixture(name), name);
    let claims = verify_bud(
        &jwks(&[key]),
        rendered.header("x-signing-id").unwrap(),
        rendered.header("x-signature").unwrap(),
        &rendered.body,
    )
    .unwrap();
    assert_eq!(claims.jti, WEBHOOK_ID);
}

#[test]
fn refresh_completed_success_matches_the_seed() {
    golden(FIXTURES[0], &refresh_completed(ResultCode::Success, true));
}

#[test]
fn refresh_completed_failed_matches_the_seed() {
    golden(
        FIXTURES[1],
        &refresh_completed(ResultCode::ProviderFailure, false),
    );
}

/// The receiver's side, done with ring alone from the published JWKS: the JWT's signature
/// verifies over its first two parts, its body digest is the body's, and a tampered body fails.
#[test]
fn the_jwt_verifies_with_the_published_public_key() {
    let key = BudSigningKey::generate().unwrap();
    let ctx = Context {
        bud_key: Some(&key),
        ..Context::new(WEBHOOK_ID, SENT_AT)
    };
    let rendered = render(
        Dialect::Bud,
        &refresh_completed(ResultCode::Success, true),
        &ctx,
    )
    .unwrap();
    let kid = rendered.header("x-signing-id").unwrap();
    let jwt = rendered.header("x-signature").unwrap();
    assert_eq!(kid, key.kid());

    let set = jwks(&[BudSigningKey::generate().unwrap(), key]);
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the signing key is published");
    for (member, value) in [
        ("kty", "EC"),
        ("crv", "P-256"),
        ("use", "sig"),
        ("alg", "ES256"),
    ] {
        assert_eq!(jwk[member], value, "{member}");
    }
    let coordinate = |c: &str| URL_SAFE_NO_PAD.decode(jwk[c].as_str().unwrap()).unwrap();
    let point = [vec![0x04], coordinate("x"), coordinate("y")].concat();
    assert_eq!(point.len(), 65);

    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let part = |i: usize| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[i]).unwrap()).unwrap()
    };
    assert_eq!(part(0), json!({"alg": "ES256", "typ": "JWT", "kid": kid}));
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let public_key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point);
    let signed = format!("{}.{}", parts[0], parts[1]);
    public_key.verify(signed.as_bytes(), &signature).unwrap();

    let digest_of = |body: &[u8]| URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, body));
    let claims = part(1);
    assert_eq!(claims["body_sha256"], digest_of(&rendered.body));
    assert_eq!(claims["iat"], SENT_AT.unix_timestamp());
    assert_eq!(claims["jti"], WEBHOOK_ID);

    let tampered = String::from_utf8(rendered.body.clone()).unwrap().replace(
        "\"has_new_transactions\":false",
        "\"has_new_transactions\":true",
    );
    assert_ne!(tampered.as_bytes(), &rendered.body[..]);
    assert_ne!(claims["body_sha256"], digest_of(tampered.as_bytes()));
    assert!(verify_bud(&set, kid, jwt, tampered.as_bytes()).is_err());
    // Nor does a signature moved onto other claims.
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(
            json!({"iat": 0, "jti": "x", "body_sha256": digest_of(tampered.as_bytes())})
                .to_string()
        ),
        parts[2]
    );
    let forged_parts: Vec<&str> = forged.split('.').collect();
    assert!(
        public_key
            .verify(
                format!("{}.{}", forged_parts[0], forged_parts[1]).as_bytes(),
                &signature
            )
            .is_err()
    );
}

/// No seed example: Bud's "Open Banking Consent Revoked" page shows the event wrapped in
/// `data`, with `consent_id`, `customer_id`, `provider`, `updated_at` and `event`.
#[test]
fn consent_revoked_follows_buds_page() {
    let data = ConsentChanged {
        customer: customer("99e911e9-d084-4790-9911-52fdf482fe95"),
        provider: provider("natwest", "Natwest", "", 1),
        link: link("l1", 1, datetime!(2023-01-01 0:00 UTC)),
        consent: ConsentSnapshot {
            id: "ab32780a-3d60-4d4d-984f-11ea3ef329cd".into(),
            status: ConsentStatus::Revoked,
            permissions_requested: Vec::new(),
            permissions_granted: Vec::new(),
            expires_at: None,
            external_track_id: None,
            reconnect_required: true,
        },
        reason: None,
    };
    let event = event(
        "0192f0c2-7a3e-7c4b-9d2e-5f1a2b3c4d5f",
        EventType::ConsentRevoked,
        datetime!(2023-10-02 14:05:55.123 UTC),
        EventData::Consent(data),
    );
    let key = BudSigningKey::generate().unwrap();
    let ctx = Context {
        bud_key: Some(&key),
        ..Context::new(WEBHOOK_ID, SENT_AT)
    };
    let (body, _) = render_json(Dialect::Bud, &event, &ctx);
    let expected = json!({
        "data": {
            "consent_id": "ab32780a-3d60-4d4d-984f-11ea3ef329cd",
            "customer_id": "99e911e9-d084-4790-9911-52fdf482fe95",
            "provider": "Natwest",
            "updated_at": "2023-10-02T14:05:55Z",
            "event": "open_banking.consent.revoked"
        }
    });
    assert_json_eq(&body, &expected, "consent revoked");
}

/// Without a signing key a Bud body is never rendered unsigned.
#[test]
fn no_key_no_body() {
    let err = render(
        Dialect::Bud,
        &refresh_completed(ResultCode::Success, true),
        &Context::new(WEBHOOK_ID, SENT_AT),
    )
    .unwrap_err();
    assert!(err.to_string().contains("signing key"), "{err}");
}
