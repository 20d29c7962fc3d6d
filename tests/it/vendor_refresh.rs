//! Each vendor dialect behaves as its vendor when a real refresh runs through the sandbox
//! bank: which messages a receiver gets, when, in what order, with which words. Every test
//! here looks only at what receivers got.

use std::time::Duration;

use freshet_engine::testing::{Answer, Received, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    refresh::{Client, quiet},
    support::{TestApp, run_with},
};

const WAIT: Duration = Duration::from_secs(20);

fn body(g: &Received) -> Value {
    serde_json::from_slice(&g.body).unwrap()
}

fn webhook_id(g: &Received) -> String {
    g.headers["webhook-id"].to_str().unwrap().to_string()
}

/// A Yodlee notification as `info/status/additionalStatus`.
fn yodlee_line(g: &Received) -> String {
    let b = body(g);
    let account = &b["event"]["data"]["providerAccount"][0];
    format!(
        "{}/{}/{}",
        b["event"]["info"].as_str().unwrap(),
        account["status"].as_str().unwrap(),
        account["dataset"][0]["additionalStatus"].as_str().unwrap()
    )
}

/// A standard delivery as its type, with the stage of a `refresh.progress`.
fn standard_line(g: &Received) -> String {
    let b = body(g);
    match b["data"]["stage"].as_str() {
        Some(stage) => format!("{}:{stage}", b["type"].as_str().unwrap()),
        None => b["type"].as_str().unwrap().to_string(),
    }
}

async fn endpoint(c: &Client<'_>, body: Value) -> Value {
    let (s, e) = c
        .call(Method::POST, "/v1/webhook-endpoints", Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    e
}

/// Waits until `r` got `n` requests, then a little longer to see that no more come.
async fn exactly(r: &Receiver, n: usize) -> Vec<Received> {
    r.wait_for(n, WAIT).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = r.received();
    assert_eq!(
        got.len(),
        n,
        "{:?}",
        got.iter().map(body).collect::<Vec<_>>()
    );
    got
}

const LOGIN: &str = "REFRESH.INTERIM_PROGRESS/IN_PROGRESS/DATA_RETRIEVAL_IN_PROGRESS";
const SUMMARY: &str = "REFRESH.INTERIM_PROGRESS/IN_PROGRESS/ACCT_SUMMARY_RECEIVED";
const DONE: &str = "REFRESH.PROCESS_COMPLETED/SUCCESS/AVAILABLE_DATA_RETRIEVED";

/// A receiver that refuses the first notification it gets still receives the stages in
/// order: nothing later in the same refresh overtakes the one being retried. Without the
/// refresh's ordering the account summary and the completion would arrive while the login
/// success waits for its retry.
async fn stages_arrive_in_order_though_the_first_is_retried(app: TestApp) {
    check_stage_order(&app).await;
    app.stop().await;
}

async fn check_stage_order(app: &TestApp) {
    let c = Client {
        app,
        key: app.new_application("order").await,
    };
    let customer = app
        .new_customer(&c.key, json!({"login_name": "fri21"}))
        .await;
    let cid = customer["id"].as_str().unwrap();
    c.connect(cid, "natwest", json!({})).await;
    // Endpoints created now hear of the refresh only.
    let yodlee = Receiver::start(vec![Answer::Status(500), Answer::Status(200)]).await;
    let standard = Receiver::start(vec![Answer::Status(503), Answer::Status(200)]).await;
    for (r, dialect) in [(&yodlee, "yodlee"), (&standard, "standard")] {
        endpoint(
            &c,
            json!({"url": r.url(), "dialect": dialect, "retry_schedule": [1]}),
        )
        .await;
    }
    let (s, started) = c
        .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    c.finished(started["task_id"].as_str().unwrap()).await;

    let got = exactly(&yodlee, 4).await;
    let lines: Vec<String> = got.iter().map(yodlee_line).collect();
    assert_eq!(
        lines,
        [LOGIN, LOGIN, SUMMARY, DONE],
        "refused, retried, then the rest"
    );
    assert_eq!(
        webhook_id(&got[0]),
        webhook_id(&got[1]),
        "the retry is the same one"
    );
    for g in &got {
        let account = &body(g)["event"]["data"]["providerAccount"][0];
        assert_eq!(
            account["aggregationSource"], "USER",
            "a client asked for it"
        );
    }

    // The standard dialect: every event of the refresh, each after the one before it.
    let got = exactly(&standard, 7).await;
    let lines: Vec<String> = got.iter().map(standard_line).collect();
    assert_eq!(
        lines,
        [
            "refresh.progress:login_success",
            "refresh.progress:login_success",
            "refresh.progress:account_summary_received",
            "accounts.updated",
            "refresh.provider.completed",
            "transactions.new",
            "refresh.completed",
        ],
    );
}

#[tokio::test]
async fn stages_arrive_in_order_though_the_first_is_retried_on_sqlite() {
    run_with(
        Backend::Sqlite,
        quiet,
        stages_arrive_in_order_though_the_first_is_retried,
    )
    .await;
}

#[tokio::test]
async fn stages_arrive_in_order_though_the_first_is_retried_on_postgres() {
    run_with(
        Backend::Postgres,
        quiet,
        stages_arrive_in_order_though_the_first_is_retried,
    )
    .await;
}

/// The bank lets freshet in and lists the accounts, then fails: Yodlee's receiver gets the
/// login success, in its own right, before the failure.
#[tokio::test]
async fn a_failure_after_login_still_reports_the_login_first() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        let c = Client {
            app: &app,
            key: app.new_application("late failure").await,
        };
        let yodlee = Receiver::start(vec![Answer::Status(200)]).await;
        endpoint(&c, json!({"url": yodlee.url(), "dialect": "yodlee"})).await;
        let (_, consent) = c.new_consent("natwest").await;
        // Every call is slow, so the failure can be set up after the login.
        c.sandbox(
            "faults",
            json!({"provider_id": "natwest", "kind": "slow", "delay_ms": 600}),
        )
        .await;
        let (s, started) = c
            .call(
                Method::PUT,
                &format!("/v1/consents/{consent}/refresh"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{started}");
        let login = yodlee.wait_for(1, WAIT).await;
        assert_eq!(
            yodlee_line(&login[0]),
            LOGIN,
            "sent while the bank is still asked"
        );
        let r = app
            .http
            .delete(app.url("/sandbox/control/faults"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        c.sandbox(
            "faults",
            json!({"provider_id": "natwest", "kind": "provider_failure"}),
        )
        .await;
        let task = c.finished(started["task_id"].as_str().unwrap()).await;
        assert_eq!(task["status"], "Failed", "{task}");
        let got = exactly(&yodlee, 2).await;
        let lines: Vec<String> = got.iter().map(yodlee_line).collect();
        assert_eq!(
            lines,
            [
                LOGIN,
                "REFRESH.PROCESS_COMPLETED/FAILED/DATA_RETRIEVAL_FAILED"
            ]
        );
        let dataset = &body(&got[1])["event"]["data"]["providerAccount"][0]["dataset"][0];
        assert_eq!(dataset["updateEligibility"], "ALLOW_UPDATE");
    })
    .await;
}

/// Scheduled refreshes reach a vendor dialect only when its endpoint opts in; the first
/// import reaches Yodlee (an account the user added) as USER, and neither Bud nor Tatra banka;
/// a refresh the client asks for reaches all; standard gets everything.
#[tokio::test]
async fn vendors_hear_of_the_refreshes_their_clients_asked_for() {
    run_with(
        Backend::Sqlite,
        |c| {
            c.refresh_tick = Duration::from_secs(1);
            // A scheduled refresh every couple of seconds, until the bank's unattended budget
            // for the day (4 calls) is spent.
            c.refreshes_per_day = 40_000;
        },
        |app| async move {
            let c = Client {
                app: &app,
                key: app.new_application("triggers").await,
            };
            let mut hooks = Vec::new();
            for (dialect, opted_in) in [
                ("standard", false),
                ("bud", false),
                ("bud", true),
                ("tatra", false),
                ("tatra", true),
                ("yodlee", false),
                ("yodlee", true),
            ] {
                let r = Receiver::start(vec![Answer::Status(200)]).await;
                let e = endpoint(
                    &c,
                    json!({"url": r.url(), "dialect": dialect, "activation": "immediate",
                           "scheduled_refreshes": opted_in}),
                )
                .await;
                assert_eq!(e["scheduled_refreshes"], opted_in, "{e}");
                hooks.push((dialect, opted_in, r, e["id"].as_str().unwrap().to_string()));
            }
            let customer = app.new_customer(&c.key, json!({})).await;
            let cid = customer["id"].as_str().unwrap();
            c.connect(cid, "lloyds", json!({})).await;
            // The first import and the scheduled refreshes after it, until the budget is spent.
            let mut unattended = Vec::new();
            for _ in 0..150 {
                unattended = c.events("refresh.completed").await;
                if unattended.len() == 4 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(
                unattended.len(),
                4,
                "the import and three scheduled refreshes"
            );
            let (s, started) = c
                .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{started}");
            let asked = started["task_id"].as_str().unwrap().to_string();
            c.finished(&asked).await;
            tokio::time::sleep(Duration::from_millis(500)).await;

            let mut triggers = std::collections::HashMap::new();
            for e in c.events("refresh.completed").await {
                let task = e["data"]["task_id"].as_str().unwrap().to_string();
                let (_, t) = c
                    .call(Method::GET, &format!("/v1/refresh-tasks/{task}"), None)
                    .await;
                triggers.insert(task, t["trigger"].as_str().unwrap().to_string());
            }
            let count = |trigger: &str| triggers.values().filter(|t| *t == trigger).count();
            assert_eq!(
                (count("first_import"), count("scheduled"), count("manual")),
                (1, 3, 1),
                "{triggers:?}"
            );
            let all = c.events("").await.len();
            let new_transactions = c.events("transactions.new").await.len();
            for (dialect, opted_in, r, _) in &hooks {
                let got = r.received();
                let bodies: Vec<Value> = got.iter().map(body).collect();
                match (*dialect, *opted_in) {
                    ("standard", _) => assert_eq!(got.len(), all, "standard gets everything"),
                    ("bud", false) => {
                        assert_eq!(bodies.len(), 1, "{bodies:?}");
                        assert_eq!(bodies[0]["task_id"], asked.as_str());
                    }
                    ("bud", true) => assert_eq!(bodies.len(), 5, "{bodies:?}"),
                    ("tatra", opted) => {
                        let accounts: Vec<&Value> = bodies
                            .iter()
                            .filter(|b| b.get("taskId").is_some())
                            .collect();
                        let expected = if opted { 5 } else { 1 };
                        assert_eq!(accounts.len(), expected, "{bodies:?}");
                        // transactionEvents follow new transactions, whatever found them.
                        assert_eq!(bodies.len() - accounts.len(), new_transactions);
                    }
                    ("yodlee", opted) => {
                        let sources: Vec<&str> = bodies
                            .iter()
                            .filter(|b| b["event"]["info"] == "REFRESH.PROCESS_COMPLETED")
                            .map(|b| {
                                b["event"]["data"]["providerAccount"][0]["aggregationSource"]
                                    .as_str()
                                    .unwrap()
                            })
                            .collect();
                        let users = sources.iter().filter(|s| **s == "USER").count();
                        let systems = sources.iter().filter(|s| **s == "SYSTEM").count();
                        assert_eq!(users, 2, "the first import and the client's: {sources:?}");
                        assert_eq!(systems, if opted { 3 } else { 0 }, "{sources:?}");
                    }
                    other => panic!("{other:?}"),
                }
            }
            // A replay sends again what the endpoint had, and no scheduled refresh it never had.
            for (dialect, opted_in, _, id) in &hooks {
                let (s, replayed) = c
                    .call(
                        Method::POST,
                        &format!("/v1/webhook-endpoints/{id}/replay"),
                        Some(json!({"since": "2020-01-01T00:00:00Z"})),
                    )
                    .await;
                assert_eq!(s, StatusCode::ACCEPTED, "{replayed}");
                if *dialect == "bud" {
                    let had = if *opted_in { 5 } else { 1 };
                    assert_eq!(
                        replayed,
                        json!({"requeued": had, "created": 0}),
                        "{dialect}"
                    );
                }
            }
            app.stop().await;
        },
    )
    .await;
}

/// Tatra banka's accountEvent reports what changed: every account ADDED on the first refresh,
/// nothing on a refresh that found the accounts as they were, UPDATED when the bank's account
/// changed. Re-enabling an endpoint starts it as creating it did.
#[tokio::test]
async fn tatra_account_events_report_changes_and_reenabling_waits_for_the_hour() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        let c = Client {
            app: &app,
            key: app.new_application("tatra").await,
        };
        let now_hook = Receiver::start(vec![Answer::Status(200)]).await;
        let hourly_hook = Receiver::start(vec![Answer::Status(200)]).await;
        let now = endpoint(
            &c,
            json!({"url": now_hook.url(), "dialect": "tatra", "activation": "immediate",
                   "event_types": ["accounts.updated"]}),
        )
        .await;
        let hourly = endpoint(
            &c,
            json!({"url": hourly_hook.url(), "dialect": "tatra",
                   "event_types": ["accounts.updated"]}),
        )
        .await;
        assert_eq!(hourly["activation"], "next_hour", "{hourly}");
        let (_, consent) = c.new_consent("slsp").await;
        let refresh = || async {
            let (s, started) = c
                .call(
                    Method::PUT,
                    &format!("/v1/consents/{consent}/refresh"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{started}");
            c.finished(started["task_id"].as_str().unwrap()).await;
        };
        let changes = |b: &Value| -> Vec<String> {
            b["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["eventType"].as_str().unwrap().to_string())
                .collect()
        };

        refresh().await;
        let first = body(&exactly(&now_hook, 1).await[0]);
        let added = changes(&first);
        assert!(
            !added.is_empty() && added.iter().all(|c| c == "ADDED"),
            "{first}"
        );

        refresh().await;
        let second = body(&exactly(&now_hook, 2).await[1]);
        assert_eq!(second["taskStatus"], "FINISHED");
        assert!(changes(&second).is_empty(), "nothing changed: {second}");

        c.sandbox("transactions", json!({"provider_id": "slsp", "count": 2}))
            .await;
        refresh().await;
        let third = body(&exactly(&now_hook, 3).await[2]);
        let moved = changes(&third);
        assert!(
            !moved.is_empty() && moved.iter().all(|c| c == "UPDATED"),
            "balances moved, nothing was added: {third}"
        );

        // Off and on again: the immediate endpoint at once, the other at the next full hour.
        for e in [&now, &hourly] {
            let id = e["id"].as_str().unwrap();
            let path = format!("/v1/webhook-endpoints/{id}");
            let (s, off) = c
                .call(Method::PATCH, &path, Some(json!({"enabled": false})))
                .await;
            assert_eq!(
                (s, off["status"].as_str()),
                (StatusCode::OK, Some("disabled"))
            );
            let (_, on) = c
                .call(Method::PATCH, &path, Some(json!({"enabled": true})))
                .await;
            if e["id"] == now["id"] {
                assert_eq!(on["status"], "active", "{on}");
            } else {
                assert_eq!(on["status"], "scheduled", "{on}");
                assert!(
                    on["active_from"].as_str().unwrap().ends_with(":00:00Z"),
                    "{on}"
                );
                let (_, read) = c.call(Method::GET, &path, None).await;
                assert_eq!(read["active_from"], on["active_from"]);
            }
        }
        refresh().await;
        exactly(&now_hook, 4).await;
        assert_eq!(hourly_hook.count(), 0, "not before the hour");
    })
    .await;
}

/// Where the vendor documents its retries and timeout the dialect follows them, and the
/// endpoint says which schedule is in force: Klavi retries a failed event within a second,
/// Yodlee ten minutes later, the others on freshet's schedule.
#[tokio::test]
async fn delivery_follows_the_vendors_policy() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        let c = Client {
            app: &app,
            key: app.new_application("policy").await,
        };
        let klavi = Receiver::start(vec![Answer::Status(500), Answer::Status(200)]).await;
        let yodlee = Receiver::start(vec![Answer::Status(500)]).await;
        let mut shown = std::collections::HashMap::new();
        for (dialect, url, own) in [
            ("klavi", klavi.url(), None),
            ("yodlee", yodlee.url(), None),
            ("bud", "http://127.0.0.1:9/bud".to_string(), None),
            (
                "tatra",
                "http://127.0.0.1:9/tatra".to_string(),
                Some(vec![7, 70]),
            ),
        ] {
            let e = endpoint(
                &c,
                json!({"url": url, "dialect": dialect, "activation": "immediate",
                       "retry_schedule": own}),
            )
            .await;
            let (_, read) = c
                .call(
                    Method::GET,
                    &format!("/v1/webhook-endpoints/{}", e["id"].as_str().unwrap()),
                    None,
                )
                .await;
            shown.insert(dialect, read["delivery"].clone());
        }
        assert_eq!(
            shown["klavi"],
            json!({"source": "klavi", "retry_schedule_seconds": [0.25, 0.5, 1.0, 2.0, 4.0],
                   "timeout_seconds": 10.0})
        );
        assert_eq!(
            shown["yodlee"],
            json!({"source": "yodlee", "timeout_seconds": null,
                   "retry_schedule_seconds": [600.0, 1200.0, 2400.0, 4800.0, 9600.0, 19200.0,
                                              38400.0, 76800.0]})
        );
        assert_eq!(shown["bud"]["source"], "freshet");
        assert_eq!(
            shown["bud"]["retry_schedule_seconds"],
            json!([5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0])
        );
        assert_eq!(
            shown["tatra"],
            json!({"source": "endpoint", "retry_schedule_seconds": [7.0, 70.0],
                   "timeout_seconds": null})
        );

        // Klavi: link.created refused once, sent again a quarter of a second later.
        let customer = app.new_customer(&c.key, json!({})).await;
        let cid = customer["id"].as_str().unwrap();
        let started = std::time::Instant::now();
        c.connect(cid, "natwest", json!({})).await;
        // link.created refused, consent.authorised, and link.created again.
        let got = klavi.wait_for(3, Duration::from_secs(3)).await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "retried within seconds"
        );
        let first = webhook_id(&got[0]);
        assert_eq!(got.iter().filter(|g| webhook_id(g) == first).count(), 2);

        // Yodlee: the refused notification is tried again ten minutes later.
        let (s, started) = c
            .call(Method::POST, &format!("/v1/customers/{cid}/refresh"), None)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{started}");
        c.finished(started["task_id"].as_str().unwrap()).await;
        let first = exactly(&yodlee, 1).await;
        assert_eq!(yodlee_line(&first[0]), LOGIN);
        let login = c
            .events("refresh.progress")
            .await
            .into_iter()
            .find(|e| e["data"]["stage"] == "login_success")
            .unwrap();
        let (_, deliveries) = c
            .call(
                Method::GET,
                &format!("/v1/events/{}/deliveries", login["id"].as_str().unwrap()),
                None,
            )
            .await;
        let to_yodlee = deliveries["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["status"] == "failed")
            .unwrap_or_else(|| panic!("{deliveries}"));
        let next = time::OffsetDateTime::parse(
            to_yodlee["next_attempt_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let wait = (next - time::OffsetDateTime::now_utc()).whole_seconds();
        assert!((500..=660).contains(&wait), "about ten minutes: {wait} s");
    })
    .await;
}

/// The same on two nodes sharing one PostgreSQL: whichever node claims a delivery, none of a
/// refresh's later notifications overtakes the one being retried.
#[tokio::test]
async fn stages_arrive_in_order_on_two_nodes() {
    use freshet::{config::Config, server::Server};
    use freshet_store::testing::TestDb;

    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let config = || {
        let mut c = Config::new(db.url.clone());
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.admin_token = Some(crate::support::ADMIN_TOKEN.to_string().into());
        c.master_key = Some(db.master_key.clone());
        quiet(&mut c);
        c
    };
    let (first, second) = (config(), config());
    let (a, b) = tokio::join!(Server::start(first), Server::start(second));
    let (a, other) = (a.expect("a node starts"), b.expect("a node starts"));
    let app = TestApp {
        base: format!("http://{}", a.addr()),
        http: reqwest::Client::new(),
        server: Some(a),
        db,
    };
    check_stage_order(&app).await;
    other.shutdown().await.unwrap();
    app.stop().await;
}
