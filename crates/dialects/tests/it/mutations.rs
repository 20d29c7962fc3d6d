//! The schemas refuse broken messages: each mutation of a valid message — a wrong word, a
//! wrong type, a missing or extra member, a badly written time, a status that contradicts its
//! result — must be refused, or the schema tests prove nothing.

use serde_json::{Value, json};

use crate::{schema::Schema, support::fixture};

/// Replace the value at a JSON pointer, remove it (`None`), or add a member to an object.
enum Change {
    Set(&'static str, Value),
    Remove(&'static str),
    Add(&'static str, &'static str, Value),
}
use Change::*;

#[track_caller]
fn assert_refused(schema: &str, good: &Value, changes: Vec<Change>) {
    let s = Schema::load(schema);
    s.assert_valid(good, schema);
    for change in changes {
        let mut v = good.clone();
        let what = match change {
            Set(pointer, bad) => {
                *v.pointer_mut(pointer)
                    .unwrap_or_else(|| panic!("{schema}: no {pointer}")) = bad.clone();
                format!("{pointer} = {bad}")
            }
            Remove(pointer) => {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                let removed = v
                    .pointer_mut(parent)
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove(key);
                assert!(removed.is_some(), "{schema}: no {pointer}");
                format!("without {pointer}")
            }
            Add(pointer, key, extra) => {
                v.pointer_mut(pointer)
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .insert(key.into(), extra);
                format!("{pointer}/{key} added")
            }
        };
        assert!(
            !s.check(&v).is_empty(),
            "{schema}: {what} should be refused"
        );
    }
}

#[test]
fn bud_refuses_broken_refresh_messages() {
    let good = fixture("seed-000-bud-refresh-completed-success.json");
    assert_refused(
        "bud/refresh-completed",
        &good,
        vec![
            Set("/status", "Done".into()),
            Set("/result", "failure".into()),
            // Completed goes with success only, and Failed with an error only.
            Set("/status", "Failed".into()),
            Set("/sub_tasks/1/result", "provider_failure".into()),
            Set(
                "/event",
                "open_banking.v2.refresh.provider.completed".into(),
            ),
            Set(
                "/sub_tasks/0/event",
                "open_banking.v2.refresh.completed".into(),
            ),
            Set(
                "/customer_id",
                "49D6A33B-7E3E-4052-96CB-04B82FCBDB2F".into(),
            ),
            Set("/sub_tasks/0/task_id", "t1".into()),
            Set(
                "/sub_tasks/0/consent_details/0/expiration_date",
                "2026-09-30".into(),
            ),
            Set(
                "/sub_tasks/0/consent_details/0/expiration_date",
                "2026-09-30T15:00:00.5Z".into(),
            ),
            Set("/sub_tasks/0/consent_details/0/expiration_date", 1.into()),
            Set("/has_new_transactions", "false".into()),
            Set("/sub_tasks/0/account_ids/0", 7.into()),
            Set("/sub_tasks", json!([])),
            Remove("/task_id"),
            Remove("/sub_tasks/0/reconnect_required"),
            Add("", "webhook_id", "x".into()),
            Add("/sub_tasks/0", "provider_id", "natwest".into()),
        ],
    );
    // A consent that does not expire is still a valid detail.
    let mut no_expiry = good;
    no_expiry["sub_tasks"][0]["consent_details"][0]["expiration_date"] = Value::Null;
    Schema::load("bud/refresh-completed").assert_valid(&no_expiry, "no expiry");
}

#[test]
fn bud_refuses_broken_revocations() {
    let good = json!({"data": {
        "consent_id": "ab32780a-3d60-4d4d-984f-11ea3ef329cd",
        "customer_id": "99e911e9-d084-4790-9911-52fdf482fe95",
        "provider": "Natwest",
        "updated_at": "2023-10-02T14:05:55Z",
        "event": "open_banking.consent.revoked"
    }});
    assert_refused(
        "bud/consent-revoked",
        &good,
        vec![
            Set("/data/event", "open_banking.consent.expired".into()),
            Set("/data/updated_at", "2023-10-02 14:05:55".into()),
            Set("/data/provider", "".into()),
            Remove("/data/consent_id"),
            Add("", "event", "open_banking.consent.revoked".into()),
        ],
    );
    let s = Schema::load("bud/consent-revoked");
    assert!(!s.check(&good["data"]).is_empty(), "unwrapped");
}

#[test]
fn tatra_refuses_broken_events() {
    assert_refused(
        "tatra/transaction-event",
        &fixture("seed-001-tatra-transaction-event.json"),
        vec![
            Set("/eventType", "UPDATED".into()),
            Set("/accounts", json!([])),
            Set(
                "/accounts/0",
                json!({"accountId": "a", "eventType": "ADDED"}),
            ),
            Add("", "taskId", "t".into()),
        ],
    );
    assert_refused(
        "tatra/account-event",
        &fixture("seed-001-tatra-account-event.json"),
        vec![
            Set("/taskStatus", "RUNNING".into()),
            Set("/taskStatus", "Completed".into()),
            Set("/accounts/0/eventType", "NEW".into()),
            Set("/accounts/0/eventType", "added".into()),
            Remove("/taskId"),
            Remove("/accounts/0/eventType"),
            Add("", "eventType", "NEW".into()),
        ],
    );
}

#[test]
fn klavi_refuses_broken_events() {
    assert_refused(
        "klavi/event",
        &fixture("seed-002-klavi-consent-authorised.json"),
        vec![
            // A consent payload under another event's name.
            Set("/0/eventName", "link_created".into()),
            Set("/0/eventName", "consent authorised".into()),
            Set("/0/eventType", "webhook".into()),
            Set("/0/eventTime", "2022-06-25T20:08:17Z".into()),
            Set("/0/eventTime", "2022-13-25T20:08:17.848Z".into()),
            Set(
                "/0/payload/consents/permissionsGranted/0",
                "registration_all".into(),
            ),
            Set("/0/payload/consents/expireAt", "2024-06-25".into()),
            Set("/0/payload/personalTaxId", "258.722.521-37".into()),
            Set("/0/payload/businessTaxId", "25872252137".into()),
            Set("/0/partnerAppId", "".into()),
            Set("/0/externalInfo", Value::Null),
            Remove("/0/payload/consents/externalTrackId"),
            Remove("/0/payload/linkId"),
            Add("/0/payload", "requestId", "r".into()),
            Set("", json!([])),
        ],
    );
    let good = fixture("seed-002-klavi-product-request-received.json");
    let mut two = good.clone();
    two.as_array_mut().unwrap().push(good[0].clone());
    assert!(
        !Schema::load("klavi/event").check(&two).is_empty(),
        "two events"
    );
    assert_refused(
        "klavi/event",
        &good,
        vec![
            Set(
                "/0/payload/requestBody/productCallbackUrl/pf_credit_card",
                "www.yourdomain.com".into(),
            ),
            Set("/0/payload/requestBody/taxId", "".into()),
            Set("/0/payload/requestBody/products", json!([])),
            Set("/0/eventName", "product_generated_success".into()),
        ],
    );
    assert_refused(
        "klavi/event",
        &fixture("seed-002-klavi-product-generated-failed.json"),
        vec![
            Remove("/0/payload/failureReason"),
            Set("/0/eventName", "product_generated_success".into()),
        ],
    );
}

/// Yodlee's examples with the `notificationId` freshet adds.
fn yodlee(file: &str) -> Value {
    let mut v = fixture(file);
    v["event"]["notificationId"] = "msg_2xH8dQmXbXh1jwWcCsvYbGJ7Ag".into();
    v
}

#[test]
fn yodlee_refuses_broken_notifications() {
    let account = "/event/data/providerAccount/0";
    assert_refused(
        "yodlee/process-completed",
        &yodlee("seed-003-yodlee-completed-success.json"),
        vec![
            Set("/event/info", "REFRESH.INTERIM_PROGRESS".into()),
            Set("/event/data/providerAccount/0/id", "10995860".into()),
            Set("/event/data/providerAccount/0/id", 1.5.into()),
            Set(
                "/event/data/providerAccount/0/status",
                "PARTIAL_SUCCESS".into(),
            ),
            // SUCCESS with a failure's words, and FAILED with a success's.
            Set(
                "/event/data/providerAccount/0/dataset/0/additionalStatus",
                "DATA_RETRIEVAL_FAILED".into(),
            ),
            Set("/event/data/providerAccount/0/status", "FAILED".into()),
            Set(
                "/event/data/providerAccount/0/dataset/0/updateEligibility",
                "DISALLOW_UPDATE".into(),
            ),
            Set(
                "/event/data/providerAccount/0/dataset/0/name",
                "ADVANCE_AGG_DATA".into(),
            ),
            Set(
                "/event/data/providerAccount/0/aggregationSource",
                "user".into(),
            ),
            Set(
                "/event/data/providerAccount/0/createdDate",
                "2017-12-22T05:47:35+00:00".into(),
            ),
            Remove("/event/notificationId"),
            Remove("/event/data/providerAccount/0/dataset/0/lastUpdateAttempt"),
            Add(
                "/event/data/providerAccount/0",
                "lastUpdated",
                "2017-12-22T05:48:16Z".into(),
            ),
            Set("/event/data/providerAccount", json!([])),
        ],
    );
    let good = yodlee("seed-003-yodlee-completed-success.json");
    let mut twice = good.clone();
    let first = good.pointer(account).unwrap().clone();
    twice["event"]["data"]["providerAccount"]
        .as_array_mut()
        .unwrap()
        .push(first);
    assert!(
        !Schema::load("yodlee/process-completed")
            .check(&twice)
            .is_empty()
    );

    assert_refused(
        "yodlee/interim-progress",
        &yodlee("seed-003-yodlee-interim-login-success.json"),
        vec![
            Set("/event/data/providerAccount/0/status", "SUCCESS".into()),
            Set(
                "/event/data/providerAccount/0/dataset/0/updateEligibility",
                "ALLOW_UPDATE".into(),
            ),
            // Nothing is retrieved at login: no lastUpdated yet, on the account or the dataset.
            Add(
                "/event/data/providerAccount/0",
                "lastUpdated",
                "2017-12-21T18:30:00Z".into(),
            ),
            Add(
                "/event/data/providerAccount/0/dataset/0",
                "lastUpdated",
                "2017-12-21T18:30:00Z".into(),
            ),
            Set("/event/loginName", "".into()),
        ],
    );
    Schema::load("yodlee/interim-progress").assert_valid(
        &yodlee("seed-003-yodlee-interim-account-summary.json"),
        "account summary",
    );
}

#[test]
fn standard_refuses_broken_envelopes() {
    let good = json!({
        "type": "endpoint.disabled",
        "timestamp": "2026-11-24T11:31:07.25Z",
        "data": {
            "endpoint_id": "e1", "url": "https://receiver.example/hooks",
            "reason": "no delivery succeeded for 5 days", "last_success_at": null
        }
    });
    assert_refused(
        "standard/envelope",
        &good,
        vec![
            // Another type's payload.
            Set("/type", "endpoint.test".into()),
            Set("/type", "endpoint.deleted".into()),
            Set("/timestamp", "yesterday".into()),
            Set("/data/last_success_at", "2026-11-19".into()),
            Remove("/data/reason"),
            Add("/data", "attempts", 3.into()),
            Add("", "id", "e1".into()),
        ],
    );
}
