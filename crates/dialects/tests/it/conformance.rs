//! Every message a dialect sends validates against the JSON Schema the project keeps for it in
//! `crates/dialects/schemas/`; the schemas' vocabularies are exactly the values freshet sends;
//! and each message validates against its own schema only, so a receiver can tell them apart.

use std::collections::{BTreeMap, BTreeSet};

use freshet_dialects::{BudSigningKey, Context, Dialect};
use freshet_model::EventType;
use serde_json::Value;

use crate::{
    catalogue::{self, Case},
    schema::Schema,
    support::*,
};

/// Every schema file, as `<dialect>/<message>`.
pub const SCHEMAS: &[&str] = &[
    "standard/envelope",
    "bud/refresh-completed",
    "bud/consent-revoked",
    "tatra/transaction-event",
    "tatra/account-event",
    "klavi/event",
    "yodlee/interim-progress",
    "yodlee/process-completed",
];

/// The schema of the message `dialect` sends for events of type `t`.
pub fn schema_for(dialect: Dialect, t: EventType) -> &'static str {
    use EventType as T;
    match (dialect, t) {
        (Dialect::Standard, _) => "standard/envelope",
        (Dialect::Bud, T::RefreshCompleted) => "bud/refresh-completed",
        (Dialect::Bud, T::ConsentRevoked) => "bud/consent-revoked",
        (Dialect::Tatra, T::TransactionsNew) => "tatra/transaction-event",
        (Dialect::Tatra, T::AccountsUpdated) => "tatra/account-event",
        (Dialect::Klavi, _) => "klavi/event",
        (Dialect::Yodlee, T::RefreshProgress) => "yodlee/interim-progress",
        (Dialect::Yodlee, T::RefreshProviderCompleted) => "yodlee/process-completed",
        (d, t) => panic!("the {d} dialect sends no {} message", t.as_str()),
    }
}

pub fn load_all() -> BTreeMap<&'static str, Schema> {
    SCHEMAS.iter().map(|n| (*n, Schema::load(n))).collect()
}

struct Rendering {
    dialect: Dialect,
    case: String,
    schema: &'static str,
    body: Value,
}

/// Every catalogue event rendered in every dialect that sends its type.
fn render_catalogue() -> Vec<Rendering> {
    let key = BudSigningKey::generate().unwrap();
    let ctx = Context {
        security_header: Some("Basic dXNlcjpwYXNzd29yZA=="),
        partner_app_id: Some("12345678"),
        bud_key: Some(&key),
        klavi_secret: Some("klavi-endpoint-secret"),
        ..Context::new(WEBHOOK_ID, SENT_AT)
    };
    let mut out = Vec::new();
    for dialect in Dialect::ALL {
        for Case { name, event } in catalogue::cases() {
            if dialect.sends(event.event_type) {
                let (body, _) = render_json(dialect, &event, &ctx);
                out.push(Rendering {
                    dialect,
                    case: name,
                    schema: schema_for(dialect, event.event_type),
                    body,
                });
            }
        }
    }
    out
}

#[test]
fn every_message_each_dialect_sends_validates() {
    let schemas = load_all();
    let rendered = render_catalogue();
    let mut failures = Vec::new();
    let mut sent = BTreeSet::new();
    for r in &rendered {
        let errors = schemas[r.schema].check(&r.body);
        if !errors.is_empty() {
            failures.push(format!(
                "{} / {} ({}):\n    {}",
                r.dialect,
                r.case,
                r.schema,
                errors.join("\n    ")
            ));
        }
        sent.insert((r.dialect.name(), r.schema));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every type every dialect sends was rendered, and every schema was used.
    for d in Dialect::ALL {
        for t in d.event_types() {
            assert!(sent.contains(&(d.name(), schema_for(d, *t))), "{d} {t:?}");
        }
    }
    let used: BTreeSet<_> = sent.iter().map(|(_, s)| *s).collect();
    assert_eq!(used, SCHEMAS.iter().copied().collect());
}

/// A dialect with several messages: each validates against its own schema and no other, so
/// a receiver (and its schema validator) can tell them apart.
#[test]
fn each_message_validates_against_its_own_schema_only() {
    let schemas = load_all();
    for r in render_catalogue() {
        let prefix = format!("{}/", r.dialect.name());
        for (name, schema) in schemas.iter().filter(|(n, _)| n.starts_with(&prefix)) {
            assert_eq!(
                schema.check(&r.body).is_empty(),
                *name == r.schema,
                "{} / {} against {name}",
                r.dialect,
                r.case
            );
        }
    }
}

/// The values reached by `path` (keys, `*` for every element of an array).
fn collect<'a>(v: &'a Value, path: &[&str], out: &mut BTreeSet<&'a str>) {
    match path.split_first() {
        None => out.extend(v.as_str()),
        Some((&"*", rest)) => {
            for item in v.as_array().into_iter().flatten() {
                collect(item, rest, out);
            }
        }
        Some((key, rest)) => {
            if let Some(next) = v.get(key) {
                collect(next, rest, out);
            }
        }
    }
}

/// A schema's enum lists exactly the values freshet sends there: every value is exercised by
/// the catalogue (every Yodlee failure kind, every Tatra change kind, every Klavi eventName…),
/// and no value is promised that freshet never sends.
#[test]
fn each_vocabulary_is_exactly_what_freshet_sends() {
    let schemas = load_all();
    let rendered = render_catalogue();
    let vocabularies: &[(&str, &str, &[&str])] = &[
        ("standard/envelope", "/properties/type/enum", &["type"]),
        (
            "bud/refresh-completed",
            "/$defs/status/enum",
            &["sub_tasks", "*", "status"],
        ),
        (
            "bud/refresh-completed",
            "/$defs/result/enum",
            &["sub_tasks", "*", "result"],
        ),
        (
            "tatra/account-event",
            "/properties/taskStatus/enum",
            &["taskStatus"],
        ),
        (
            "tatra/account-event",
            "/properties/accounts/items/properties/eventType/enum",
            &["accounts", "*", "eventType"],
        ),
        (
            "klavi/event",
            "/$defs/event/properties/eventName/enum",
            &["*", "eventName"],
        ),
        (
            "klavi/event",
            "/$defs/permission/enum",
            &["*", "payload", "consents", "permissionsApply", "*"],
        ),
        (
            "yodlee/interim-progress",
            "/$defs/dataset/properties/additionalStatus/enum",
            &[
                "event",
                "data",
                "providerAccount",
                "*",
                "dataset",
                "*",
                "additionalStatus",
            ],
        ),
        (
            "yodlee/interim-progress",
            "/$defs/provider_account/properties/aggregationSource/enum",
            &["event", "data", "providerAccount", "*", "aggregationSource"],
        ),
        (
            "yodlee/process-completed",
            "/$defs/provider_account/properties/status/enum",
            &["event", "data", "providerAccount", "*", "status"],
        ),
        (
            "yodlee/process-completed",
            "/$defs/dataset/properties/additionalStatus/enum",
            &[
                "event",
                "data",
                "providerAccount",
                "*",
                "dataset",
                "*",
                "additionalStatus",
            ],
        ),
        (
            "yodlee/process-completed",
            "/$defs/dataset/properties/updateEligibility/enum",
            &[
                "event",
                "data",
                "providerAccount",
                "*",
                "dataset",
                "*",
                "updateEligibility",
            ],
        ),
    ];
    for (schema, pointer, path) in vocabularies {
        let promised: BTreeSet<&str> = schemas[schema]
            .doc()
            .pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{schema}: no enum at {pointer}"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut sent = BTreeSet::new();
        for r in rendered.iter().filter(|r| r.schema == *schema) {
            collect(&r.body, path, &mut sent);
        }
        assert_eq!(sent, promised, "{schema} {pointer}");
    }
}
