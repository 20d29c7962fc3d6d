//! The refresh engine as a client sees it: links approved on the sandbox bank's page, refresh
//! tasks over several banks, faults, pending items booked, expiry, and the events of it all.

use std::time::Duration;

use freshet::config::Config;
use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode, redirect::Policy};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_problem, run_with};

/// The scheduler stays out of the way unless a test wants it.
pub fn quiet(c: &mut Config) {
    c.refresh_tick = Duration::from_secs(3600);
}

pub struct Client<'a> {
    pub app: &'a TestApp,
    pub key: String,
}

impl Client<'_> {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.app.call(method, path, Some(&self.key), body).await
    }

    /// Creates a link and approves it on the bank's page, as `curl -L -d decision=approve` would.
    pub async fn connect(&self, customer: &str, provider: &str, extra: Value) -> Value {
        let mut body = json!({"provider_id": provider});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let (s, link) = self
            .call(
                Method::POST,
                &format!("/v1/customers/{customer}/links"),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{link}");
        assert_eq!(link["consent"]["status"], "awaiting_authorisation");
        let url = link["consent"]["authorisation_url"].as_str().unwrap();
        let page = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Approve"), "the bank's page: {page}");
        let follow = reqwest::Client::builder()
            .redirect(Policy::limited(3))
            .build()
            .unwrap();
        let done = follow
            .post(url)
            .form(&[("decision", "approve")])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        assert!(done.text().await.unwrap().contains("Connected"));
        let id = link["consent"]["id"].as_str().unwrap();
        let (_, consent) = self
            .call(Method::GET, &format!("/v1/consents/{id}"), None)
            .await;
        assert_eq!(consent["status"], "authorised", "{consent}");
        consent
    }

    /// A new customer with an authorised consent at `provider`: their ids.
    pub async fn new_consent(&self, provider: &str) -> (String, String) {
        let customer = self.app.new_customer(&self.key, json!({})).await;
        let cid = customer["id"].as_str().unwrap();
        let consent = self.connect(cid, provider, json!({})).await;
        (cid.to_string(), consent["id"].as_str().unwrap().to_string())
    }

    /// Waits for a task to end.
    pub async fn finished(&self, task: &str) -> Value {
        for _ in 0..600 {
            let (s, t) = self
                .call(Method::GET, &format!("/v1/refresh-tasks/{task}"), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{t}");
            if t["status"] == "Completed" || t["status"] == "Failed" {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("task {task} did not end");
    }

    pub async fn events(&self, kind: &str) -> Vec<Value> {
        let filter = if kind.is_empty() {
            String::new()
        } else {
            format!("type={kind}&")
        };
        let (s, page) = self
            .call(Method::GET, &format!("/v1/events?{filter}limit=500"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        page["data"].as_array().unwrap().clone()
    }

    pub async fn sandbox(&self, path: &str, body: Value) {
        let r = self
            .app
            .http
            .post(self.app.url(&format!("/sandbox/control/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "{path}: {}",
            r.text().await.unwrap()
        );
    }
}

async fn client(app: &TestApp) -> Client<'_> {
    Client {
        app,
        key: app.new_application("refresh").await,
    }
}

async fn seed_000(app: TestApp) {
    let c = client(&app).await;
    let hooks = Receiver::start(vec![Answer::Status(204)]).await;
    let (s, _) = c
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({"url": hooks.url()})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let customer = app
        .new_customer(
            &c.key,
            json!({"external_id": "c-000", "login_name": "alice"}),
        )
        .await;
    let cid = customer["id"].as_str().unwrap();
    c.connect(cid, "natwest", json!({})).await;
    c.connect(cid, "tatrabanka", json!({})).await;
    c.sandbox(
        "faults",
        json!({"provider_id": "tatrabanka", "kind": "provider_failure"}),
    )
    .await;

    let (s, started) = c
        .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["sub_tasks"].as_array().unwrap().len(), 2);
    let task = c.finished(started["task_id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "Failed", "{task}");
    assert_eq!(task["result"], "provider_failure");
    assert_eq!(task["has_new_transactions"], true);
    let sub = |p: &str| {
        task["sub_tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["provider"] == p)
            .unwrap()
            .clone()
    };
    let (good, bad) = (sub("natwest"), sub("tatrabanka"));
    assert_eq!(
        (good["status"].as_str(), good["result"].as_str()),
        (Some("Completed"), Some("success"))
    );
    assert!(!good["account_ids"].as_array().unwrap().is_empty());
    assert_eq!(
        good["has_new_transactions"], true,
        "the first import is all new"
    );
    assert_eq!(
        (bad["status"].as_str(), bad["result"].as_str()),
        (Some("Failed"), Some("provider_failure"))
    );
    assert_eq!(bad["reconnect_required"], false);

    // One event per state change, each once.
    let count = |kind: &'static str| {
        let c = &c;
        async move { c.events(kind).await.len() }
    };
    assert_eq!(count("link.created").await, 2);
    assert_eq!(count("consent.authorised").await, 2);
    assert_eq!(
        count("refresh.progress").await,
        2,
        "natwest's two stages; tatrabanka failed first"
    );
    assert_eq!(count("refresh.provider.completed").await, 2);
    assert_eq!(count("accounts.updated").await, 2);
    assert_eq!(count("transactions.new").await, 1);
    let completed = c.events("refresh.completed").await;
    assert_eq!(completed.len(), 1);
    let data = &completed[0]["data"];
    assert_eq!(data["status"], "Failed");
    assert_eq!(data["result"], "provider_failure");
    assert_eq!(data["customer"]["external_id"], "c-000");
    assert_eq!(data["sub_tasks"].as_array().unwrap().len(), 2);
    let all = c.events("").await.len();
    assert!(all >= 12);
    hooks.wait_for(all, Duration::from_secs(10)).await;

    // What the refresh found, through the read API.
    let (_, accounts) = c
        .call(Method::GET, &format!("/v1/customers/{cid}/accounts"), None)
        .await;
    let accounts = accounts["data"].as_array().unwrap().clone();
    assert_eq!(
        accounts.len(),
        good["account_ids"].as_array().unwrap().len()
    );
    assert!(!accounts[0]["balances"].as_array().unwrap().is_empty());
    let aid = accounts[0]["id"].as_str().unwrap();
    let (_, txns) = c
        .call(
            Method::GET,
            &format!("/v1/accounts/{aid}/transactions?limit=500"),
            None,
        )
        .await;
    let n = txns["data"].as_array().unwrap().len();
    assert!(n > 20, "90 days of history: {n}");
    let (_, sync) = c
        .call(
            Method::GET,
            &format!("/v1/accounts/{aid}/transactions/sync?limit=500"),
            None,
        )
        .await;
    assert_eq!(sync["added"].as_array().unwrap().len(), n);
    assert_eq!(sync["has_more"], false);
    let cursor = sync["next_cursor"].as_str().unwrap();
    let (_, again) = c
        .call(
            Method::GET,
            &format!("/v1/accounts/{aid}/transactions/sync?cursor={cursor}"),
            None,
        )
        .await;
    assert!(
        again["added"].as_array().unwrap().is_empty()
            && again["modified"].as_array().unwrap().is_empty()
    );

    // A second refresh, the fault gone: nothing new, both succeed.
    c.app
        .http
        .delete(c.app.url("/sandbox/control/faults"))
        .send()
        .await
        .unwrap();
    let (_, second) = c
        .call(
            Method::POST,
            &format!("/v1/customers/{cid}/refresh"),
            Some(json!({"providers": ["natwest"]})),
        )
        .await;
    let second = c.finished(second["task_id"].as_str().unwrap()).await;
    assert_eq!(second["status"], "Completed", "{second}");
    assert_eq!(
        second["has_new_transactions"], false,
        "the same history is not new twice"
    );
    let (_, txns) = c
        .call(
            Method::GET,
            &format!("/v1/accounts/{aid}/transactions?limit=500"),
            None,
        )
        .await;
    assert_eq!(
        txns["data"].as_array().unwrap().len(),
        n,
        "re-fetching is idempotent"
    );
}

#[tokio::test]
async fn seed_000_two_banks_one_failing_on_sqlite() {
    run_with(Backend::Sqlite, quiet, seed_000).await;
}

#[tokio::test]
async fn seed_000_two_banks_one_failing_on_postgres() {
    run_with(Backend::Postgres, quiet, seed_000).await;
}

/// Requests to refresh one customer that arrive together start one task between them.
async fn requests_at_once_start_one_task(app: TestApp) {
    let c = client(&app).await;
    let (cid, id) = c.new_consent("natwest").await;
    // A slow bank keeps the first task open while the others arrive.
    c.sandbox(
        "faults",
        json!({"provider_id": "natwest", "kind": "slow", "delay_ms": 300}),
    )
    .await;
    let whole = format!("/v1/customers/{cid}/refresh");
    let asked = futures::future::join_all((0..8).map(|_| c.call(Method::POST, &whole, None))).await;
    let tasks: std::collections::BTreeSet<String> = asked
        .iter()
        .map(|(s, t)| {
            assert_eq!(*s, StatusCode::ACCEPTED, "{t}");
            t["task_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        tasks.len(),
        1,
        "one task for eight requests at once: {tasks:?}"
    );
    let one = format!("/v1/consents/{id}/refresh");
    let asked = futures::future::join_all((0..8).map(|_| c.call(Method::PUT, &one, None))).await;
    let subs: std::collections::BTreeSet<String> = asked
        .iter()
        .map(|(_, t)| t["task_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subs.len(), 1, "{subs:?}");
    let task = c.finished(tasks.first().unwrap()).await;
    assert_eq!(task["status"], "Completed", "{task}");
    assert_eq!(task["sub_tasks"].as_array().unwrap().len(), 1);
    assert_eq!(c.events("refresh.completed").await.len(), 1);
}

#[tokio::test]
async fn requests_at_once_start_one_task_on_sqlite() {
    run_with(Backend::Sqlite, quiet, requests_at_once_start_one_task).await;
}

#[tokio::test]
async fn requests_at_once_start_one_task_on_postgres() {
    run_with(Backend::Postgres, quiet, requests_at_once_start_one_task).await;
}

#[tokio::test]
async fn every_fault_kind_ends_the_sub_task_with_its_result() {
    run_with(
        Backend::Sqlite,
        |c| {
            quiet(c);
            c.bank_timeout = Duration::from_secs(1);
        },
        |app| async move {
            let c = client(&app).await;
            let (cid, id) = c.new_consent("lloyds").await;
            let (cid, id) = (cid.as_str(), id.as_str());
            for (kind, result, reconnect) in [
                ("provider_failure", "provider_failure", false),
                ("rate_limited", "provider_request_limit", false),
                ("maintenance", "provider_maintenance", false),
                ("timeout", "provider_timeout", false),
                ("reauth_required", "connection_reauthenticate", true),
            ] {
                c.sandbox(
                    "faults",
                    json!({"provider_id": "lloyds", "kind": kind, "times": 1}),
                )
                .await;
                let (s, started) = c
                    .call(
                        Method::PUT,
                        &format!("/v1/consents/{id}/refresh"),
                        Some(json!({"customer_ip": "203.0.113.4"})),
                    )
                    .await;
                assert_eq!(s, StatusCode::ACCEPTED, "{started}");
                let sub = started["task_id"].as_str().unwrap();
                if kind == "timeout" {
                    // While the bank hangs, asking again returns the running refresh.
                    let (_, again) = c
                        .call(Method::PUT, &format!("/v1/consents/{id}/refresh"), None)
                        .await;
                    assert_eq!(again["task_id"], sub);
                    let (_, whole) = c
                        .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
                        .await;
                    assert_eq!(whole["task_id"], started["refresh_task_id"]);
                }
                let task = c.finished(sub).await;
                let s = &task["sub_tasks"][0];
                assert_eq!(s["task_id"], sub);
                assert_eq!(s["result"], result, "{kind}: {task}");
                assert_eq!(s["reconnect_required"], reconnect, "{kind}");
            }
            let (_, consent) = c
                .call(Method::GET, &format!("/v1/consents/{id}"), None)
                .await;
            assert_eq!(
                consent["reconnect_required"], true,
                "the bank wants the customer again"
            ); // The customer came back (the fault is gone): a refresh that works clears it.
            let (_, t) = c
                .call(Method::PUT, &format!("/v1/consents/{id}/refresh"), None)
                .await;
            let t = c.finished(t["task_id"].as_str().unwrap()).await;
            assert_eq!(t["status"], "Completed", "{t}");
            let (_, consent) = c
                .call(Method::GET, &format!("/v1/consents/{id}"), None)
                .await;
            assert_eq!(consent["reconnect_required"], false);

            let updated = c.events("accounts.updated").await;
            assert_eq!(updated.len(), 6);
            let failed = updated
                .iter()
                .filter(|e| e["data"]["task_status"] == "Failed")
                .count();
            assert_eq!(failed, 5, "one per fault");
        },
    )
    .await;
}

#[tokio::test]
async fn a_slow_bank_reports_its_progress_before_its_end() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        let c = client(&app).await;
        let (cid, id) = c.new_consent("natwest").await;
        let (cid, id) = (cid.as_str(), id.as_str());
        // Every call is slow: the transactions come well after the accounts.
        c.sandbox(
            "faults",
            json!({"provider_id": "natwest", "kind": "slow", "delay_ms": 700}),
        )
        .await;
        let (s, started) = c
            .call(Method::PUT, &format!("/v1/consents/{id}/refresh"), None)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{started}");
        let sub = started["task_id"].as_str().unwrap();
        let mut progress = Vec::new();
        for _ in 0..200 {
            progress = c.events("refresh.progress").await;
            if progress.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(progress.len(), 2, "both stages reported: {progress:?}");
        let (_, running) = c
            .call(Method::GET, &format!("/v1/refresh-tasks/{sub}"), None)
            .await;
        assert_eq!(
            running["status"], "Running",
            "reported while the bank still sends transactions: {running}"
        );
        assert!(c.events("refresh.provider.completed").await.is_empty());
        let (_, accounts) = c
            .call(Method::GET, &format!("/v1/customers/{cid}/accounts"), None)
            .await;
        assert!(
            !accounts["data"].as_array().unwrap().is_empty(),
            "the accounts are readable before the end: {accounts}"
        );

        let task = c.finished(sub).await;
        assert_eq!(task["status"], "Completed", "{task}");
        assert_eq!(c.events("refresh.progress").await.len(), 2, "reported once");
        let ended = c.events("accounts.updated").await;
        assert_eq!(ended.len(), 1);
        assert!(
            ended[0]["data"]["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["change"] == "added"),
            "{ended:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn pending_items_booked_at_the_bank_come_back_as_modified() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        let c = client(&app).await;
        let (_, id) = c.new_consent("natwest").await;
        let id = id.as_str();
        let refresh = || async {
            let (_, t) = c
                .call(
                    Method::PUT,
                    &format!("/v1/consents/{id}/refresh"),
                    Some(json!({"customer_ip": "203.0.113.4"})),
                )
                .await;
            c.finished(t["task_id"].as_str().unwrap()).await
        };
        let first = refresh().await;
        assert_eq!(first["status"], "Completed", "{first}");
        let aid = first["sub_tasks"][0]["account_ids"][0]
            .as_str()
            .unwrap()
            .to_string();
        let (_, sync) = c
            .call(
                Method::GET,
                &format!("/v1/accounts/{aid}/transactions/sync?limit=500"),
                None,
            )
            .await;
        let cursor = sync["next_cursor"].as_str().unwrap().to_string();

        c.sandbox(
            "transactions",
            json!({"provider_id": "natwest", "count": 4, "status": "pending"}),
        )
        .await;
        let second = refresh().await;
        assert_eq!(second["has_new_transactions"], true);
        let (_, sync) = c
            .call(
                Method::GET,
                &format!("/v1/accounts/{aid}/transactions/sync?cursor={cursor}"),
                None,
            )
            .await;
        let added = sync["added"].as_array().unwrap();
        assert_eq!(added.len(), 4, "{sync}");
        assert!(added.iter().all(|t| t["status"] == "pending"));
        let cursor = sync["next_cursor"].as_str().unwrap().to_string();

        c.sandbox("transactions/book", json!({"provider_id": "natwest"}))
            .await;
        let third = refresh().await;
        assert_eq!(
            third["has_new_transactions"], false,
            "booking is not new money"
        );
        let (_, sync) = c
            .call(
                Method::GET,
                &format!("/v1/accounts/{aid}/transactions/sync?cursor={cursor}"),
                None,
            )
            .await;
        let modified = sync["modified"].as_array().unwrap();
        assert_eq!(
            modified.len(),
            4,
            "all four booked, one under a new id: {sync}"
        );
        assert!(modified.iter().all(|t| t["status"] == "booked"));
        assert!(
            sync["added"].as_array().unwrap().is_empty()
                && sync["removed"].as_array().unwrap().is_empty()
        );
        assert_eq!(c.events("transactions.new").await.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn consents_ended_at_the_bank_need_the_customer_again() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        let c = client(&app).await;
        let customer = app.new_customer(&c.key, json!({})).await;
        let cid = customer["id"].as_str().unwrap();
        let obie = c.connect(cid, "natwest", json!({})).await;
        let berlin = c.connect(cid, "slsp", json!({})).await;
        // Expire OBIE's consent and revoke Berlin Group's, at the banks.
        for (consent, action) in [(&obie, "expire"), (&berlin, "revoke")] {
            let bank = consent["bank_consent_id"].as_str().unwrap();
            let url = c
                .app
                .url(&format!("/sandbox/control/consents/{bank}/{action}"));
            assert!(
                c.app
                    .http
                    .post(url)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .is_success()
            );
        }
        let (_, t) = c
            .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
            .await;
        let task = c.finished(t["task_id"].as_str().unwrap()).await;
        let sub = |p: &str| {
            task["sub_tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["provider"] == p)
                .unwrap()
                .clone()
        };
        assert_eq!(
            sub("natwest")["result"],
            "connection_expired",
            "OBIE's 401: {task}"
        );
        assert_eq!(
            sub("slsp")["result"],
            "connection_revoked",
            "Berlin Group's CONSENT_INVALID"
        );
        assert!(
            sub("natwest")["reconnect_required"] == true
                && sub("slsp")["reconnect_required"] == true
        );
        let (_, o) = c
            .call(
                Method::GET,
                &format!("/v1/consents/{}", obie["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(
            (o["status"].as_str(), o["reconnect_required"].as_bool()),
            (Some("authorised"), Some(true))
        );
        let (_, b) = c
            .call(
                Method::GET,
                &format!("/v1/consents/{}", berlin["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(
            b["status"], "deleted_by_user",
            "the customer withdrew it at the bank"
        );
        assert_eq!(c.events("consent.deleted_by_user").await.len(), 1);

        // Revoking through freshet: once, at the bank and here.
        let (s, revoked) = c
            .call(
                Method::DELETE,
                &format!("/v1/consents/{}", obie["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(
            (s, revoked["status"].as_str()),
            (StatusCode::OK, Some("revoked"))
        );
        c.call(
            Method::DELETE,
            &format!("/v1/consents/{}", obie["id"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(c.events("consent.revoked").await.len(), 1);
        let (s, body) = c
            .call(
                Method::PUT,
                &format!("/v1/consents/{}/refresh", obie["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_problem(s, &body, StatusCode::UNPROCESSABLE_ENTITY, Some("consent"));
    })
    .await;
}

#[tokio::test]
async fn the_scheduler_refreshes_warns_and_expires() {
    run_with(
        Backend::Sqlite,
        |c| c.refresh_tick = Duration::from_secs(1),
        |app| async move {
            let c = client(&app).await;
            let customer = app.new_customer(&c.key, json!({})).await;
            let cid = customer["id"].as_str().unwrap();
            let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(6);
            let expires = expires
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            let consent = c
                .connect(cid, "lloyds", json!({"expires_at": expires}))
                .await;
            let id = consent["id"].as_str().unwrap();
            // Authorised: the first import is scheduled at once.
            let mut scheduled = Vec::new();
            for _ in 0..100 {
                scheduled = c.events("refresh.completed").await;
                if !scheduled.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(scheduled.len(), 1, "one scheduled import");
            let task = scheduled[0]["data"]["task_id"].as_str().unwrap();
            let (_, t) = c
                .call(Method::GET, &format!("/v1/refresh-tasks/{task}"), None)
                .await;
            assert_eq!(t["trigger"], "first_import");
            assert_eq!(t["status"], "Completed", "{t}");
            for _ in 0..100 {
                let (_, now) = c
                    .call(Method::GET, &format!("/v1/consents/{id}"), None)
                    .await;
                if now["status"] == "expired" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (_, now) = c
                .call(Method::GET, &format!("/v1/consents/{id}"), None)
                .await;
            assert_eq!(now["status"], "expired");
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(c.events("consent.expiring").await.len(), 1, "warned once");
            assert_eq!(c.events("consent.expired").await.len(), 1, "expired once");
            assert_eq!(
                c.events("refresh.completed").await.len(),
                1,
                "an expired consent is not refreshed"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn links_refuse_what_cannot_work() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        let c = client(&app).await;
        let customer = app.new_customer(&c.key, json!({})).await;
        let cid = customer["id"].as_str().unwrap();
        let cases = [
            (
                json!({"provider_id": "monzo"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "provider_id",
            ),
            (
                json!({"provider_id": "santander-br"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "provider_id",
            ),
            (
                json!({"provider_id": "natwest", "expires_at": "2001-01-01T00:00:00Z"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "expires_at",
            ),
            (
                json!({"provider_id": "natwest", "permissions": ["everything"]}),
                StatusCode::BAD_REQUEST,
                "permissions[0]",
            ),
            (
                json!({"provider_id": "natwest", "redirect_url": "ftp://x"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "redirect_url",
            ),
            (
                json!({"provider": "natwest"}),
                StatusCode::BAD_REQUEST,
                "provider",
            ),
        ];
        for (body, status, field) in cases {
            let (s, b) = c
                .call(
                    Method::POST,
                    &format!("/v1/customers/{cid}/links"),
                    Some(body.clone()),
                )
                .await;
            assert_problem(s, &b, status, Some(field));
        }
        let (_, consents) = c
            .call(Method::GET, &format!("/v1/customers/{cid}/consents"), None)
            .await;
        assert_eq!(consents["data"], json!([]), "nothing refused was kept");
        let (s, b) = c
            .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
            .await;
        assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("providers"));
        let (s, b) = c
            .call(
                Method::POST,
                &format!("/v1/customers/{cid}/refresh"),
                Some(json!({"providers": ["natwest"], "from": "2999-01-01"})),
            )
            .await;
        assert_problem(s, &b, StatusCode::UNPROCESSABLE_ENTITY, Some("from"));
        let (s, b) = app
            .call(
                Method::GET,
                "/v1/consents/callback?state=nope&code=x",
                None,
                None,
            )
            .await;
        assert_problem(s, &b, StatusCode::NOT_FOUND, None);
        // A rejected authorisation: consent.rejected, and the client's page says so.
        let (_, link) = c
            .call(
                Method::POST,
                &format!("/v1/customers/{cid}/links"),
                Some(json!({"provider_id": "lloyds", "redirect_url": "http://127.0.0.1:9/back"})),
            )
            .await;
        let url = link["consent"]["authorisation_url"].as_str().unwrap();
        let no_follow = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        let to_freshet = no_follow
            .post(url)
            .form(&[("decision", "reject")])
            .send()
            .await
            .unwrap();
        let callback = to_freshet.headers()["location"]
            .to_str()
            .unwrap()
            .to_string();
        let back = no_follow.get(&callback).send().await.unwrap();
        assert_eq!(back.status(), StatusCode::SEE_OTHER);
        let location = back.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("http://127.0.0.1:9/back?consent_id=")
                && location.ends_with("status=rejected"),
            "{location}"
        );
        assert_eq!(c.events("consent.rejected").await.len(), 1);
        let again = no_follow.get(&callback).send().await.unwrap();
        assert_eq!(
            again.status(),
            StatusCode::NOT_FOUND,
            "a callback works once"
        );
    })
    .await;
}

/// Three nodes on one PostgreSQL database, each running the scheduler every second: every
/// consent's first import is scheduled once and run once, whichever node takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_postgres_refresh_each_consent_once() {
    use freshet::server::Server;
    use freshet_store::testing::TestDb;

    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let node = |sandbox_url: Option<String>| {
        let mut config = Config::new(db.url.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin_token = Some(crate::support::ADMIN_TOKEN.to_string().into());
        config.master_key = Some(db.master_key.clone());
        config.refresh_tick = Duration::from_secs(1);
        if let Some(url) = sandbox_url {
            // One sandbox bank for all: the first node's.
            config.sandbox = false;
            config.sandbox_url = Some(url);
        }
        Server::start(config)
    };
    let first = node(None).await.unwrap();
    let base = format!("http://{}", first.addr());
    let others = [
        node(Some(format!("{base}/sandbox"))).await.unwrap(),
        node(Some(format!("{base}/sandbox"))).await.unwrap(),
    ];
    let app = TestApp {
        base: base.clone(),
        http: reqwest::Client::new(),
        server: None,
        db,
    };
    let c = client(&app).await;
    let banks = ["natwest", "lloyds", "tatrabanka", "slsp"];
    let mut consents = Vec::new();
    for i in 0..12 {
        let customer = app
            .new_customer(&c.key, json!({"external_id": format!("n-{i}")}))
            .await;
        let consent = c
            .connect(
                customer["id"].as_str().unwrap(),
                banks[i % banks.len()],
                json!({}),
            )
            .await;
        consents.push(consent["id"].as_str().unwrap().to_string());
    }
    for _ in 0..200 {
        if c.events("refresh.completed").await.len() >= consents.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Three more scheduler passes on every node: nothing is scheduled twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let done = c.events("refresh.completed").await;
    assert_eq!(done.len(), consents.len(), "one import per consent");
    let mut seen: Vec<String> = done
        .iter()
        .map(|e| {
            e["data"]["sub_tasks"][0]["consent_ids"][0]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    seen.sort();
    let mut want = consents.clone();
    want.sort();
    assert_eq!(seen, want, "every consent, once");
    for e in &done {
        let task = e["data"]["task_id"].as_str().unwrap();
        let (_, t) = c
            .call(Method::GET, &format!("/v1/refresh-tasks/{task}"), None)
            .await;
        assert_eq!(t["status"], "Completed", "{t}");
        assert_eq!(t["trigger"], "first_import");
        assert_eq!(t["sub_tasks"][0]["attempts"], 1, "claimed by one node: {t}");
    }
    for n in others {
        n.shutdown().await.unwrap();
    }
    first.shutdown().await.unwrap();
}
