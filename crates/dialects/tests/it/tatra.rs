//! Seed 001 (Tatra banka Premium API): a transactionEvent and an accountEvent with the seed's
//! example values, and the security header sent verbatim as `Authorization`.

use freshet_dialects::{Context, Dialect, render};
use freshet_model::{
    EventType,
    events::{
        AccountChange, AccountChangeKind, AccountNewTransactions, AccountsUpdated, Event,
        EventData, RefreshTrigger, TaskStatus, TransactionsNew,
    },
};
use time::macros::datetime;

use crate::support::*;

pub const FIXTURES: &[&str] = &[
    "seed-001-tatra-transaction-event.json",
    "seed-001-tatra-account-event.json",
];

const CONSENT: &str = "151f5dsf5s-15fsd1f5d-d1f5sdf15s";
const ACCOUNT: &str = "ds8f4ds8-d18saf4d8f-1ds8f4ds8f";
const HEADER: &str = "Basic dXNlcjpwYXNzd29yZA==";

fn transactions_new() -> Event {
    event(
        "0192f0c2-7a3e-7c4b-9d2e-000000000001",
        EventType::TransactionsNew,
        datetime!(2026-03-01 12:00 UTC),
        EventData::TransactionsNew(TransactionsNew {
            customer: customer("c1"),
            provider: provider("tatrabanka", "Tatra banka", "TB", 1),
            consent_id: CONSENT.into(),
            task_id: None,
            accounts: vec![AccountNewTransactions {
                account_id: ACCOUNT.into(),
                count: 3,
            }],
        }),
    )
}

fn accounts_updated(task_status: TaskStatus) -> Event {
    event(
        "0192f0c2-7a3e-7c4b-9d2e-000000000002",
        EventType::AccountsUpdated,
        datetime!(2026-03-01 12:00 UTC),
        EventData::AccountsUpdated(AccountsUpdated {
            customer: customer("c1"),
            provider: provider("slsp", "Slovenská sporiteľňa", "SLSP", 2),
            consent_id: CONSENT.into(),
            task_id: ACCOUNT.into(),
            trigger: RefreshTrigger::Manual,
            task_status,
            accounts: vec![AccountChange {
                account_id: ACCOUNT.into(),
                change: AccountChangeKind::Added,
            }],
        }),
    )
}

fn ctx() -> Context<'static> {
    Context {
        security_header: Some(HEADER),
        ..Context::new(WEBHOOK_ID, SENT_AT)
    }
}

#[test]
fn transaction_event_matches_the_seed() {
    let (body, rendered) = render_json(Dialect::Tatra, &transactions_new(), &ctx());
    assert_json_eq(&body, &fixture(FIXTURES[0]), FIXTURES[0]);
    assert_eq!(rendered.header("authorization"), Some(HEADER));
}

#[test]
fn account_event_matches_the_seed() {
    let (body, rendered) = render_json(
        Dialect::Tatra,
        &accounts_updated(TaskStatus::Completed),
        &ctx(),
    );
    assert_json_eq(&body, &fixture(FIXTURES[1]), FIXTURES[1]);
    assert_eq!(rendered.header("authorization"), Some(HEADER));
}

#[test]
fn failed_tasks_report_failed_and_running_ones_nothing() {
    let (body, _) = render_json(
        Dialect::Tatra,
        &accounts_updated(TaskStatus::Failed),
        &ctx(),
    );
    assert_eq!(body["taskStatus"], "FAILED");
    let err = render(
        Dialect::Tatra,
        &accounts_updated(TaskStatus::Running),
        &ctx(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("ended task"), "{err}");
}

/// "Security header might be empty": then no `Authorization` header at all.
#[test]
fn no_security_header_no_authorization() {
    for header in [None, Some("")] {
        let ctx = Context {
            security_header: header,
            ..Context::new(WEBHOOK_ID, SENT_AT)
        };
        let rendered = render(Dialect::Tatra, &transactions_new(), &ctx).unwrap();
        assert_eq!(rendered.header("authorization"), None);
        assert_eq!(rendered.header("content-type"), Some("application/json"));
    }
}
