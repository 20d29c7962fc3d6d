//! A sub-task's end: what it found written, its events, and its task's end when it was the
//! last — one transaction, conditional on still holding the claim.
//!
//! Each stage of the end is one function that writes its part in the transaction and returns
//! the events that report it, in the order a receiver gets them: the account summary (when not
//! written earlier), the sub-task's own end (`accounts.updated`, `refresh.provider.completed`,
//! `transactions.new`), a consent the bank says the customer withdrew, and the task's end
//! (`refresh.completed`).

use freshet_banks::BankError;
use freshet_model::{
    ConsentStatus, EventType, ResultCode,
    events::{
        AccountNewTransactions, AccountsUpdated, ConsentChanged, EventData, ProviderCompleted,
        RefreshCompleted, RefreshTrigger, TaskStatus, TransactionsNew,
    },
    refresh::{AccountId, Consent, SubTask},
};
use freshet_store::{AccountChanges, AccountSummary, RefreshEnd, StoreError, SubTaskEnd, Tx};
use time::OffsetDateTime;

use super::{
    Refresher,
    runner::{Found, Subject},
    snapshots,
    summary::Summary,
};

/// Events to record, in order.
type Events = Vec<(EventType, EventData)>;

/// How an attempt ended, beyond what it found.
pub(super) struct End {
    pub failure: Option<BankError>,
    /// The bank was asked for data, which it counts against the consent's unattended budget
    /// unless the customer is present.
    pub asked_for_data: bool,
}

impl End {
    fn status(&self) -> TaskStatus {
        match self.failure {
            None => TaskStatus::Completed,
            Some(_) => TaskStatus::Failed,
        }
    }

    fn result(&self) -> ResultCode {
        self.failure
            .as_ref()
            .map_or(ResultCode::Success, |e| e.result)
    }

    fn reconnect_required(&self) -> bool {
        self.failure
            .as_ref()
            .is_some_and(BankError::reconnect_required)
    }
}

/// Ends the sub-task with its events — the accounts and interim stage first, when not yet
/// written — and its task with `refresh.completed` when it was the last.
pub(super) async fn finish(
    r: &Refresher,
    sub: &SubTask,
    token: &str,
    subject: &Subject,
    summary: Option<&Summary>,
    found: &[Found],
    end: End,
) -> Result<(), StoreError> {
    let now = freshet_model::time::now();
    let mut tx = r.begin().await?;
    let mut events = account_summary(r, &mut tx, sub, subject, summary).await?;
    let Some(ended) = end_subtask(&mut tx, sub, token, summary, found, &end).await? else {
        // The claim was lost: whoever holds it now ends the sub-task.
        return Ok(());
    };
    let consent_now = end_consent(r, &mut tx, sub, &subject.consent, &end, now).await?;
    events.extend(subtask_events(r, sub, subject, &ended, &consent_now));
    events.extend(withdrawn_at_bank(r, &mut tx, sub, subject, &consent_now, &end).await?);
    events.extend(end_task(r, &mut tx, sub, subject, &consent_now).await?);
    r.record_all(&mut tx, sub, events).await?;
    tx.commit().await?;
    let ran_for = ended
        .started_at
        .zip(ended.finished_at)
        .and_then(|(s, f)| std::time::Duration::try_from(f - s).ok());
    r.inner
        .engine
        .metrics()
        .subtask_ended(&sub.provider_id, end.result(), ran_for);
    Ok(())
}

/// The accounts found, when they were not written ahead, and the interim stage that reports
/// them.
async fn account_summary(
    r: &Refresher,
    tx: &mut Tx,
    sub: &SubTask,
    subject: &Subject,
    summary: Option<&Summary>,
) -> Result<Events, StoreError> {
    let Some(summary) = summary else {
        return Ok(Vec::new());
    };
    summary.store(tx, sub, &subject.consent).await?;
    Ok(summary.progress(r, sub, subject))
}

/// The transactions found and the sub-task's row, ended; `None` when the claim was lost.
async fn end_subtask(
    tx: &mut Tx,
    sub: &SubTask,
    token: &str,
    summary: Option<&Summary>,
    found: &[Found],
    end: &End,
) -> Result<Option<SubTask>, StoreError> {
    let batch: Vec<AccountChanges<'_>> = found
        .iter()
        .map(|f| AccountChanges {
            account: f.account,
            changes: &f.changes,
            last_booked: f.last_booked,
        })
        .collect();
    let counts = tx.apply_changes(&batch).await?;
    let added: Vec<(AccountId, u32)> = found.iter().map(|f| f.account).zip(counts).collect();
    let reached = summary.map(|s| (s.ids(), s.changes()));
    tx.finish_subtask(
        sub.id,
        token,
        SubTaskEnd {
            status: end.status(),
            result: end.result(),
            reconnect_required: end.reconnect_required(),
            added: &added,
            summary: reached
                .as_ref()
                .map(|(accounts, changes)| AccountSummary { accounts, changes }),
        },
    )
    .await
}

/// The consent after the refresh: whether the bank wants the customer again, when it was last
/// refreshed and next will be, the unattended budget spent. Returns the consent as it now is.
async fn end_consent(
    r: &Refresher,
    tx: &mut Tx,
    sub: &SubTask,
    consent: &Consent,
    end: &End,
    now: OffsetDateTime,
) -> Result<Consent, StoreError> {
    let mut consent_now = consent.clone();
    // The bank wants the customer again, or — a refresh having worked — no longer does.
    let reconnect_now =
        end.reconnect_required() || (consent.reconnect_required && end.failure.is_some());
    if reconnect_now != consent.reconnect_required {
        tx.set_reconnect_required(consent.id, reconnect_now).await?;
        consent_now.reconnect_required = reconnect_now;
    }
    // Asking for data without the customer present spends one of the day's unattended
    // refreshes, whether or not the bank then answered — unless the bank itself asked to be
    // called, by notifying freshet of new transactions.
    let spends = sub.customer_ip.is_none() && sub.trigger != RefreshTrigger::BankNotification;
    let mut consent_end = RefreshEnd {
        next_refresh: None,
        unattended_on: (end.asked_for_data && spends).then(|| now.date()),
    };
    if end.failure.is_none() {
        consent_now.last_refreshed_at = Some(now);
        consent_end.next_refresh = Some(if sub.customer_ip.is_some() {
            now
        } else {
            r.next_refresh(now)
        });
    }
    tx.end_refresh(consent.id, consent_end).await?;
    Ok(consent_now)
}

/// The sub-task's own end: the accounts it changed, its completion, the transactions it found.
fn subtask_events(
    r: &Refresher,
    sub: &SubTask,
    subject: &Subject,
    ended: &SubTask,
    consent_now: &Consent,
) -> Events {
    let provider = r.provider_snapshot(&sub.provider_id);
    let customer = snapshots::customer(&subject.customer);
    let snapshot = snapshots::sub_task(
        ended,
        provider.clone(),
        snapshots::link(&subject.link),
        consent_now,
    );
    let mut events = vec![
        (
            EventType::AccountsUpdated,
            EventData::AccountsUpdated(AccountsUpdated {
                customer: customer.clone(),
                provider: provider.clone(),
                consent_id: consent_now.id.to_string(),
                task_id: sub.id.to_string(),
                trigger: sub.trigger,
                task_status: ended.status,
                accounts: ended.account_changes.clone().unwrap_or_default(),
            }),
        ),
        (
            EventType::RefreshProviderCompleted,
            EventData::ProviderCompleted(ProviderCompleted {
                customer: customer.clone(),
                task_id: sub.task_id.to_string(),
                trigger: sub.trigger,
                sub_task: snapshot,
            }),
        ),
    ];
    let new_counts: Vec<AccountNewTransactions> = ended
        .new_transactions
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(account, n)| {
            Some(AccountNewTransactions {
                account_id: account.clone(),
                count: n.as_u64()? as u32,
            })
        })
        .filter(|a| a.count > 0)
        .collect();
    if !new_counts.is_empty() {
        events.push((
            EventType::TransactionsNew,
            EventData::TransactionsNew(TransactionsNew {
                customer,
                provider,
                consent_id: consent_now.id.to_string(),
                task_id: Some(sub.id.to_string()),
                accounts: new_counts,
            }),
        ));
    }
    events
}

/// The bank says the customer withdrew the consent there: it moves to `deleted_by_user`.
async fn withdrawn_at_bank(
    r: &Refresher,
    tx: &mut Tx,
    sub: &SubTask,
    subject: &Subject,
    consent_now: &Consent,
    end: &End,
) -> Result<Events, StoreError> {
    let consent = &subject.consent;
    if end.result() != ResultCode::ConnectionRevoked || consent.status != ConsentStatus::Authorised
    {
        return Ok(Vec::new());
    }
    if !tx
        .move_consent(
            consent.id,
            &[ConsentStatus::Authorised],
            ConsentStatus::DeletedByUser,
        )
        .await?
    {
        return Ok(Vec::new());
    }
    let gone = Consent {
        status: ConsentStatus::DeletedByUser,
        ..consent_now.clone()
    };
    Ok(vec![(
        EventType::ConsentDeletedByUser,
        EventData::Consent(ConsentChanged {
            customer: snapshots::customer(&subject.customer),
            provider: r.provider_snapshot(&sub.provider_id),
            link: snapshots::link(&subject.link),
            consent: snapshots::consent(&gone),
            reason: end.failure.as_ref().map(|f| f.detail.clone()),
        }),
    )])
}

/// The task, ended with `refresh.completed` when this was its last sub-task to end.
async fn end_task(
    r: &Refresher,
    tx: &mut Tx,
    sub: &SubTask,
    subject: &Subject,
    consent_now: &Consent,
) -> Result<Events, StoreError> {
    let Some((task, subs)) = tx.finish_task_if_done(sub.task_id).await? else {
        return Ok(Vec::new());
    };
    let link_snap = snapshots::link(&subject.link);
    let mut snaps = Vec::with_capacity(subs.len());
    for s in &subs {
        let c = if s.consent_id == consent_now.id {
            consent_now.clone()
        } else {
            r.store()
                .consent(s.consent_id)
                .await?
                .unwrap_or_else(|| consent_now.clone())
        };
        let l = if c.link_id == subject.link.id {
            link_snap.clone()
        } else {
            r.store()
                .link(c.link_id)
                .await?
                .map_or_else(|| link_snap.clone(), |l| snapshots::link(&l))
        };
        snaps.push(snapshots::sub_task(
            s,
            r.provider_snapshot(&s.provider_id),
            l,
            &c,
        ));
    }
    Ok(vec![(
        EventType::RefreshCompleted,
        EventData::RefreshCompleted(RefreshCompleted {
            customer: snapshots::customer(&subject.customer),
            task_id: task.id.to_string(),
            trigger: task.trigger,
            status: task.status,
            result: task.result.unwrap_or(ResultCode::InternalError),
            has_new_transactions: task.has_new_transactions,
            sub_tasks: snaps,
        }),
    )])
}
