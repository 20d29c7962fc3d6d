//! Tatra banka Premium API webhooks (seed 001): `transactions.new` as a transactionEvent and
//! `accounts.updated` as an accountEvent. The seed lists the fields but shows no whole body; the
//! two are told apart by the accountEvent's `taskId`. Authentication is the endpoint's security
//! header, sent verbatim as `Authorization` (added by [`crate::render`]).

use freshet_model::{
    EventType,
    events::{AccountChangeKind, AccountsUpdated, Event, EventData, TaskStatus, TransactionsNew},
};
use serde::Serialize;

use crate::{Dialect, RenderError, Rendered};

pub(crate) const EVENT_TYPES: &[EventType] =
    &[EventType::TransactionsNew, EventType::AccountsUpdated];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransactionEvent<'a> {
    consent_id: &'a str,
    /// "Currently only eventType=NEW is supported."
    event_type: &'static str,
    accounts: Vec<TransactionAccount<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TransactionAccount<'a> {
    account_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountEvent<'a> {
    consent_id: &'a str,
    task_id: &'a str,
    task_status: &'static str,
    bank_code: &'a str,
    bank_name: &'a str,
    accounts: Vec<AccountEventAccount<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountEventAccount<'a> {
    account_id: &'a str,
    event_type: &'static str,
}

pub(crate) fn render(event: &Event) -> Result<Rendered, RenderError> {
    let body = match (event.event_type, &event.data) {
        (EventType::TransactionsNew, EventData::TransactionsNew(e)) => {
            serde_json::to_vec(&transaction_event(e))?
        }
        (EventType::AccountsUpdated, EventData::AccountsUpdated(e)) => {
            serde_json::to_vec(&account_event(e)?)?
        }
        (t, _) => return Err(RenderError::PayloadMismatch(t)),
    };
    Ok(Rendered {
        body,
        headers: Vec::new(),
    })
}

fn transaction_event(e: &TransactionsNew) -> TransactionEvent<'_> {
    TransactionEvent {
        consent_id: &e.consent_id,
        event_type: "NEW",
        accounts: e
            .accounts
            .iter()
            .map(|a| TransactionAccount {
                account_id: &a.account_id,
            })
            .collect(),
    }
}

fn account_event(e: &AccountsUpdated) -> Result<AccountEvent<'_>, RenderError> {
    Ok(AccountEvent {
        consent_id: &e.consent_id,
        task_id: &e.task_id,
        task_status: task_status(e.task_status)?,
        bank_code: &e.provider.code,
        bank_name: &e.provider.name,
        accounts: e
            .accounts
            .iter()
            .map(|a| AccountEventAccount {
                account_id: &a.account_id,
                event_type: change(a.change),
            })
            .collect(),
    })
}

/// The seed shows `FINISHED`; an accountEvent reports an ended task, so a failed one is
/// `FAILED` and a task still running has nothing to report yet.
fn task_status(s: TaskStatus) -> Result<&'static str, RenderError> {
    match s {
        TaskStatus::Completed => Ok("FINISHED"),
        TaskStatus::Failed => Ok("FAILED"),
        TaskStatus::Pending | TaskStatus::Running => Err(RenderError::Missing {
            dialect: Dialect::Tatra,
            what: "an ended task (accountEvent reports FINISHED or FAILED tasks)",
        }),
    }
}

/// The seed shows `ADDED`; the other changes in the same words.
fn change(c: AccountChangeKind) -> &'static str {
    match c {
        AccountChangeKind::Added => "ADDED",
        AccountChangeKind::Updated => "UPDATED",
        AccountChangeKind::Removed => "REMOVED",
    }
}
