//! The runner: claims sub-tasks, one bank's at a time up to that bank's concurrency, and
//! carries each out — tokens, accounts, balances, every account's transactions reconciled
//! against what freshet holds — then ends it and, with the last sub-task, its task.
//!
//! Login success is written on its own as soon as the bank listed the accounts, so a receiver
//! hears of it before balances and transactions are asked for. What a sub-task finds is written
//! with its end ([`ending`](super::ending)), the accounts first (on their own only when the bank
//! is slow, see [`summary`](super::summary)), each step idempotent, with what the final events
//! need kept on the sub-task row in the same transaction. So an attempt cut short by a crash is
//! simply run again by whoever next claims it, and its events still come out once: every
//! transaction is conditional on the claim, and each stage is reported by the attempt that
//! moved the sub-task to it.

use std::{collections::HashMap, sync::Arc};

use freshet_banks::{BankAccount, BankError, Connector, Session};
use freshet_model::{
    ConsentStatus, Customer, ResultCode,
    reconcile::{self, TxnStatus},
    refresh::{AccountId, Balance, BankTokens, Consent, Link, SubTask},
};
use freshet_store::{FoundAccount, StoreError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{
    POLL, Refresher,
    ending::{self, End},
    summary::{self, Summary},
};

/// Why an attempt ended early.
enum Stop {
    /// The sub-task fails with this: the bank said no, or freshet would not ask it.
    Fail {
        error: BankError,
        /// The bank was asked for data (accounts, balances, transactions), which the bank
        /// counts against the consent's unattended budget unless the customer is present.
        asked_for_data: bool,
    },
    /// freshet could not go on (store down, claim lost): leave the claim to expire and retry.
    Internal(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

pub async fn run(r: Refresher, stop: CancellationToken) {
    let limits: HashMap<String, Arc<Semaphore>> = r
        .providers()
        .map(|p| (p.id.clone(), Arc::new(Semaphore::new(p.concurrency.max(1)))))
        .collect();
    if r.store().kind() == freshet_store::StoreKind::Sqlite {
        // One node on SQLite: whatever it had claimed before a restart is its own to redo.
        if let Err(e) = r.store().release_subtask_leases().await {
            tracing::warn!(error = %e, "could not release sub-task leases");
        }
    }
    loop {
        for p in r.providers() {
            let limit = &limits[&p.id];
            let free = limit.available_permits() as u32;
            if free == 0 {
                continue;
            }
            match r
                .store()
                .claim_subtasks(&p.id, &r.inner.config.node, r.inner.config.lease, free)
                .await
            {
                Ok((token, subs)) => {
                    for sub in subs {
                        let Ok(permit) = limit.clone().try_acquire_owned() else {
                            break;
                        };
                        let (r, token) = (r.clone(), token.clone());
                        tokio::spawn(async move {
                            run_one(&r, sub, &token).await;
                            drop(permit);
                            // A free slot: claim the next waiting sub-task now, not at the
                            // next poll.
                            r.inner.wake.notify_one();
                        });
                    }
                }
                Err(e) => tracing::warn!(provider = %p.id, error = %e, "claiming sub-tasks failed"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = r.inner.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn run_one(r: &Refresher, sub: SubTask, token: &str) {
    let subject = match subject(r, &sub).await {
        Ok(Some(s)) => s,
        // Deleting a customer or consent deletes its sub-tasks too: nothing is left to end.
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(sub_task = %sub.id, error = %e, "reading the sub-task's consent failed; it will be retried");
            return;
        }
    };
    let Attempt { summary, outcome } = if sub.attempts > r.inner.config.max_attempts {
        Attempt {
            summary: None,
            outcome: Err(failed(BankError::new(
                ResultCode::InternalError,
                "the sub-task was interrupted too many times",
            ))),
        }
    } else {
        fetch(r, &sub, token, &subject).await
    };
    let (found, end) = match outcome {
        Ok(found) => (
            found,
            End {
                failure: None,
                asked_for_data: true,
            },
        ),
        Err(Stop::Fail {
            error,
            asked_for_data,
        }) => (
            Vec::new(),
            End {
                failure: Some(error),
                asked_for_data,
            },
        ),
        Err(Stop::Internal(why)) => {
            tracing::warn!(sub_task = %sub.id, %why, "the sub-task stopped; it will be retried when its claim expires");
            return;
        }
    };
    if let Err(e) = ending::finish(r, &sub, token, &subject, summary.as_ref(), &found, end).await {
        tracing::warn!(sub_task = %sub.id, error = %e, "ending the sub-task failed; it will be retried");
    }
}

/// What a sub-task is about, read once per attempt: its events carry snapshots of all three.
pub(super) struct Subject {
    pub consent: Consent,
    pub customer: Customer,
    pub link: Link,
}

async fn subject(r: &Refresher, sub: &SubTask) -> Result<Option<Subject>, StoreError> {
    let Some(consent) = r.store().consent(sub.consent_id).await? else {
        return Ok(None);
    };
    let customer = r
        .store()
        .get_customer(sub.application_id, sub.customer_id)
        .await?;
    let link = r.store().link(consent.link_id).await?;
    Ok(customer.zip(link).map(|(customer, link)| Subject {
        consent,
        customer,
        link,
    }))
}

/// One account's reconciled transactions, fetched and not yet written.
pub(super) struct Found {
    pub account: AccountId,
    pub changes: reconcile::Changes,
    pub last_booked: Option<time::Date>,
}

/// A failure before the bank was asked for data: freshet's own checks, or the token call.
fn failed(e: BankError) -> Stop {
    Stop::Fail {
        error: e,
        asked_for_data: false,
    }
}

/// The bank's refusal of a call for data.
fn data_err(e: BankError) -> Stop {
    Stop::Fail {
        error: e,
        asked_for_data: true,
    }
}

/// A token good for the next minute, renewed when it is not.
async fn tokens(
    r: &Refresher,
    connector: &Connector,
    consent: &Consent,
) -> Result<BankTokens, Stop> {
    let held = r.store().consent_tokens(consent.id).await?.ok_or_else(|| {
        failed(BankError::new(
            ResultCode::AuthExpired,
            "the consent has no tokens",
        ))
    })?;
    let soon = freshet_model::time::now() + time::Duration::MINUTE;
    if held.expires_at.is_none_or(|e| e > soon) {
        return Ok(held);
    }
    let Some(refresh) = &held.refresh_token else {
        return Err(failed(BankError::new(
            ResultCode::AuthExpired,
            "the access token expired and there is no refresh token",
        )));
    };
    let t = connector.refresh_tokens(refresh).await.map_err(failed)?;
    let renewed = BankTokens {
        access_token: t.access_token,
        refresh_token: t.refresh_token.or(held.refresh_token),
        expires_at: t.expires_at,
    };
    let mut tx = r.store().begin().await?;
    tx.save_tokens(consent.id, &renewed).await?;
    tx.commit().await?;
    Ok(renewed)
}

/// What an attempt came to.
struct Attempt {
    /// The accounts found, when they are not written yet.
    summary: Option<Summary>,
    outcome: Result<Vec<Found>, Stop>,
}

/// How long the transactions may take before the accounts and the interim stages are written
/// on their own rather than with the sub-task's end.
const PROGRESS_EARLY: std::time::Duration = std::time::Duration::from_millis(500);

/// Everything the bank has for the sub-task. The accounts and the interim stages are written
/// early only when the transactions are slow to come; otherwise [`finish`] writes them.
async fn fetch(r: &Refresher, sub: &SubTask, token: &str, subject: &Subject) -> Attempt {
    let mut summary = None;
    let outcome = fetch_into(r, sub, token, subject, &mut summary).await;
    Attempt { summary, outcome }
}

/// [`fetch`], leaving in `unwritten` the accounts found until they are written.
async fn fetch_into(
    r: &Refresher,
    sub: &SubTask,
    token: &str,
    subject: &Subject,
    unwritten: &mut Option<Summary>,
) -> Result<Vec<Found>, Stop> {
    let consent = &subject.consent;
    if consent.status != ConsentStatus::Authorised {
        let code = match consent.status {
            ConsentStatus::Expired => ResultCode::ConnectionExpired,
            _ => ResultCode::ConnectionRevoked,
        };
        return Err(failed(BankError::new(
            code,
            format!("the consent is {}", consent.status.as_str()),
        )));
    }
    let Some((_, connector)) = r.bank(&sub.provider_id) else {
        return Err(failed(BankError::new(
            ResultCode::ProviderNotFound,
            "this freshet no longer knows the provider",
        )));
    };
    let tokens = tokens(r, connector, consent).await?;
    let session = Session {
        bank_consent_id: &consent.bank_consent_id,
        access_token: &tokens.access_token,
        customer_ip: sub.customer_ip.as_deref(),
        auth_date: consent.authorised_at,
    };
    let listed = connector.accounts(&session).await.map_err(data_err)?;
    login_success(r, sub, token, subject).await?;
    let mut with_balances = Vec::with_capacity(listed.len());
    for a in &listed {
        let balances = connector
            .balances(&session, &a.id)
            .await
            .map_err(data_err)?;
        with_balances.push(found_account(a, balances));
    }
    let held = r.store().consent_accounts(consent.id).await?;
    let summary = Summary::plan(with_balances, &held);
    let ids = summary.ids();
    *unwritten = Some(summary);

    let today = freshet_model::time::now().date();
    let history_start = today - time::Duration::days(r.inner.config.history_days);
    let windows: Vec<Window> = ids
        .iter()
        .map(|id| {
            let last_booked = held
                .iter()
                .find(|h| h.id == *id)
                .and_then(|h| h.last_booked_date);
            let from = sub.window_from.unwrap_or_else(|| {
                reconcile::refetch_from(
                    last_booked,
                    time::Duration::days(r.inner.config.margin_days),
                    history_start,
                )
            });
            Window {
                account: *id,
                last_booked,
                from,
                to: sub.window_to.unwrap_or(today),
            }
        })
        .collect();
    let transactions = transactions(r, sub, token, connector, &session, &listed, windows);
    tokio::pin!(transactions);
    tokio::select! {
        found = &mut transactions => found,
        () = tokio::time::sleep(PROGRESS_EARLY) => {
            let summary = unwritten.take();
            let early = async {
                match &summary {
                    Some(s) => write_summary(r, sub, token, subject, s).await,
                    None => Ok(()),
                }
            };
            let (written, found) = tokio::join!(early, &mut transactions);
            if written.is_err() {
                // Not written after all: the end writes it, or the next attempt does.
                *unwritten = summary;
            }
            written?;
            found
        }
    }
}

/// One account's stretch of transactions to fetch.
struct Window {
    account: AccountId,
    last_booked: Option<time::Date>,
    from: time::Date,
    to: time::Date,
}

/// Every account's transactions, fetched and reconciled against what freshet holds.
async fn transactions(
    r: &Refresher,
    sub: &SubTask,
    token: &str,
    connector: &Connector,
    session: &Session<'_>,
    listed: &[BankAccount],
    windows: Vec<Window>,
) -> Result<Vec<Found>, Stop> {
    let mut known = r
        .store()
        .known_transactions(
            &windows
                .iter()
                .map(|w| (w.account, w.from))
                .collect::<Vec<_>>(),
        )
        .await?;
    let mut found = Vec::with_capacity(windows.len());
    let mut renewed = std::time::Instant::now();
    for (bank_account, w) in listed.iter().zip(windows) {
        if found.iter().any(|f: &Found| f.account == w.account) {
            // Listed twice by the bank: fetched once, or its transactions would be added twice.
            continue;
        }
        let fetched = connector
            .transactions(session, &bank_account.id, w.from, w.to)
            .await
            .map_err(data_err)?;
        let newest_booked = fetched
            .iter()
            .filter(|t| t.status == TxnStatus::Booked)
            .map(|t| t.booking_date)
            .max();
        let known = known.remove(&w.account).unwrap_or_default();
        found.push(Found {
            account: w.account,
            changes: reconcile::reconcile(&known, &fetched),
            last_booked: newest_booked.max(w.last_booked),
        });
        // A bank slow enough to use a third of the lease gets the claim renewed.
        if renewed.elapsed() > r.inner.config.lease / 3 {
            if !r
                .store()
                .extend_subtask_lease(sub.id, token, r.inner.config.lease)
                .await?
            {
                return Err(Stop::Internal("the claim was lost".into()));
            }
            renewed = std::time::Instant::now();
        }
    }
    Ok(found)
}

/// Reports that the bank let freshet in and listed the accounts, in a transaction of its own
/// before balances and transactions are asked for, unless an earlier attempt reported it.
async fn login_success(
    r: &Refresher,
    sub: &SubTask,
    token: &str,
    subject: &Subject,
) -> Result<(), Stop> {
    if sub.stage.is_some() {
        return Ok(());
    }
    let mut tx = r.begin().await?;
    if !tx.reach_login_success(sub.id, token).await? {
        // Lost the claim: whoever holds it now goes on, and the next write here fails.
        return Ok(());
    }
    let event = summary::login_success(r, sub, subject);
    r.record_all(&mut tx, sub, vec![event]).await?;
    tx.commit().await?;
    Ok(())
}

/// Stores the accounts found and reports the account summary, in a transaction of their own.
async fn write_summary(
    r: &Refresher,
    sub: &SubTask,
    token: &str,
    subject: &Subject,
    summary: &Summary,
) -> Result<(), Stop> {
    let mut tx = r.begin().await?;
    let Some(events) = summary.write_ahead(r, &mut tx, sub, token, subject).await? else {
        return Err(Stop::Internal("the claim was lost".into()));
    };
    r.record_all(&mut tx, sub, events).await?;
    tx.commit().await?;
    Ok(())
}

fn found_account(a: &BankAccount, balances: Vec<freshet_banks::BankBalance>) -> FoundAccount {
    FoundAccount {
        bank_account_id: a.id.clone(),
        currency: a.currency.clone(),
        name: a.name.clone(),
        kind: a.kind.clone(),
        identification: a.identification.clone(),
        balances: balances
            .into_iter()
            .map(|b| Balance {
                kind: b.kind,
                amount: b.amount,
                currency: b.currency,
                at: b.at,
            })
            .collect(),
    }
}
