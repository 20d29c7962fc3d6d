//! What a refresh writes about a consent's accounts: the accounts the bank listed, those it no
//! longer lists, and every account's reconciled transactions.
//!
//! Each is a fixed handful of multi-row statements whatever the number of accounts and
//! transactions, because a refresh cycle over thousands of consents is bounded by the
//! database's work per statement, not per row.

use std::collections::HashMap;

use freshet_model::{
    ApplicationId, CustomerId,
    reconcile::{BankTxn, Changes, KnownTxn},
    refresh::{AccountId, ConsentId, Transaction, TransactionId},
};
use sqlx::types::Json;
use time::Date;
use uuid::Uuid;

use crate::{
    Result, Store, StoreError, Tx,
    accounts::{FoundAccount, txn_from_row, ymd},
    codec::{RowExt, Ts},
    on_tx,
};

/// Rows per multi-row statement: well under SQLite's 32,766 parameters at 14 a row.
///
/// Statements whose text grows with their row count are not kept prepared: nearly every
/// refresh writes a different count, and each connection's cache of such texts (up to a
/// hundred, of tens of KiB each) held the node's memory at twice its need.
const CHUNK: usize = 1_000;

/// One account's reconciled changes, to write.
#[derive(Clone, Copy, Debug)]
pub struct AccountChanges<'a> {
    pub account: AccountId,
    pub changes: &'a Changes,
    /// The newest booked date seen: the next refresh re-fetches from there.
    pub last_booked: Option<Date>,
}

impl Tx {
    /// Inserts or updates a consent's accounts under the ids the caller chose from what it
    /// holds. A stored account keeps its id, so an id other than the one chosen means the
    /// caller's view was stale: that is an error, for the caller to retry with a fresh view.
    pub async fn upsert_accounts(
        &mut self,
        app: ApplicationId,
        customer: CustomerId,
        consent: ConsentId,
        provider_id: &str,
        found: &[(AccountId, FoundAccount)],
    ) -> Result<()> {
        // A bank listing an account twice would have the statement touch one row twice.
        let mut unique: Vec<&(AccountId, FoundAccount)> = Vec::with_capacity(found.len());
        for a in found {
            if !unique
                .iter()
                .any(|u| u.1.bank_account_id == a.1.bank_account_id)
            {
                unique.push(a);
            }
        }
        if unique.is_empty() {
            return Ok(());
        }
        let now = Ts(freshet_model::time::now());
        on_tx!(self, |conn| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO accounts (id, application_id, customer_id, consent_id, provider_id, \
                 bank_account_id, currency, name, kind, identification, balances, removed, seq, \
                 created_at, updated_at) ",
            );
            q.push_values(&unique, |mut row, (id, a)| {
                row.push_bind(id.0)
                    .push_bind(app.0)
                    .push_bind(customer.0)
                    .push_bind(consent.0)
                    .push_bind(provider_id)
                    .push_bind(&a.bank_account_id)
                    .push_bind(&a.currency)
                    .push_bind(&a.name)
                    .push_bind(&a.kind)
                    .push_bind(&a.identification)
                    .push_bind(Json(&a.balances))
                    .push_bind(false)
                    .push_bind(0i64)
                    .push_bind(now)
                    .push_bind(now);
            });
            q.push(
                " ON CONFLICT (consent_id, bank_account_id) DO UPDATE SET currency = excluded.currency, \
                 name = excluded.name, kind = excluded.kind, identification = excluded.identification, \
                 balances = excluded.balances, removed = excluded.removed, updated_at = excluded.updated_at \
                 RETURNING id, bank_account_id",
            );
            for r in q.build().fetch_all(&mut *conn).await? {
                let (id, bank_id) = (r.uuid("id")?, r.text("bank_account_id")?);
                if !unique
                    .iter()
                    .any(|(chosen, a)| chosen.0 == id && a.bank_account_id == bank_id)
                {
                    return Err(StoreError::Corrupt(format!(
                        "account {bank_id} is stored as {id}, not under the id chosen for it"
                    )));
                }
            }
        });
        Ok(())
    }

    /// Marks accounts the bank no longer lists as removed.
    pub async fn remove_accounts(&mut self, ids: &[AccountId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        on_tx!(self, |conn| {
            let mut q = sqlx::QueryBuilder::new("UPDATE accounts SET removed = ");
            q.push_bind(true)
                .push(", updated_at = ")
                .push_bind(Ts(freshet_model::time::now()))
                .push(" WHERE id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(id.0);
            }
            q.push(")");
            q.build().execute(&mut *conn).await?;
        });
        Ok(())
    }

    /// Writes several accounts' reconciled changes. Each account with changes takes its next
    /// change sequence, stamped on what it touched; every account's re-fetch point moves.
    /// Returns how many transactions were added, in `batch`'s order.
    pub async fn apply_changes(&mut self, batch: &[AccountChanges<'_>]) -> Result<Vec<u32>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = Ts(freshet_model::time::now());
        let seqs: HashMap<Uuid, i64> = on_tx!(self, |conn| {
            let mut q = sqlx::QueryBuilder::new("WITH v (account, last_booked, bump) AS (");
            q.push_values(batch, |mut row, a| {
                row.push_bind(a.account.0)
                    .push_bind(a.last_booked.map(ymd))
                    .push_bind(i64::from(!a.changes.is_empty()));
            });
            q.push(
                ") UPDATE accounts SET seq = accounts.seq + v.bump, \
                 last_booked_date = COALESCE(v.last_booked, accounts.last_booked_date), \
                 updated_at = CASE WHEN v.bump = 1 THEN ",
            );
            q.push_bind(now);
            q.push(" ELSE accounts.updated_at END FROM v WHERE accounts.id = v.account RETURNING id, seq");
            let rows = q.build().fetch_all(&mut *conn).await?;
            let mut seqs = HashMap::with_capacity(rows.len());
            for r in &rows {
                seqs.insert(r.uuid("id")?, r.i64("seq")?);
            }
            seqs
        });
        let seq_of = |a: &AccountChanges<'_>| {
            seqs.get(&a.account.0)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("account {} is gone", a.account.0)))
        };
        let mut added: Vec<(Uuid, i64, &BankTxn)> = Vec::new();
        let mut modified: Vec<(Uuid, i64, Uuid, &BankTxn)> = Vec::new();
        let mut removed: Vec<(Uuid, i64, Uuid)> = Vec::new();
        for a in batch.iter().filter(|a| !a.changes.is_empty()) {
            let seq = seq_of(a)?;
            let account = a.account.0;
            added.extend(a.changes.added.iter().map(|t| (account, seq, t)));
            modified.extend(
                a.changes
                    .modified
                    .iter()
                    .map(|(id, t)| (account, seq, *id, t)),
            );
            removed.extend(a.changes.removed.iter().map(|id| (account, seq, *id)));
        }
        on_tx!(self, |conn| {
            for chunk in added.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::new(concat!(
                    "INSERT INTO transactions (",
                    crate::accounts::txn_columns!(),
                    ") "
                ));
                q.push_values(chunk, |mut row, (account, seq, t)| {
                    row.push_bind(TransactionId::new().0)
                        .push_bind(*account)
                        .push_bind(&t.provider_id)
                        .push_bind(t.immutable_id)
                        .push_bind(t.status.as_str())
                        .push_bind(ymd(t.booking_date))
                        .push_bind(t.amount.to_string())
                        .push_bind(&t.currency)
                        .push_bind(&t.description)
                        .push_bind(false)
                        .push_bind(*seq)
                        .push_bind(*seq)
                        .push_bind(now)
                        .push_bind(now);
                });
                q.build().persistent(false).execute(&mut *conn).await?;
            }
            for chunk in modified.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::new(
                    "WITH v (txn, account, provider_transaction_id, immutable_id, status, \
                     booking_date, amount, currency, description, changed_seq) AS (",
                );
                q.push_values(chunk, |mut row, (account, seq, id, t)| {
                    row.push_bind(*id)
                        .push_bind(*account)
                        .push_bind(&t.provider_id)
                        .push_bind(t.immutable_id)
                        .push_bind(t.status.as_str())
                        .push_bind(ymd(t.booking_date))
                        .push_bind(t.amount.to_string())
                        .push_bind(&t.currency)
                        .push_bind(&t.description)
                        .push_bind(*seq);
                });
                q.push(
                    ") UPDATE transactions SET provider_transaction_id = v.provider_transaction_id, \
                     immutable_id = v.immutable_id, status = v.status, booking_date = v.booking_date, \
                     amount = v.amount, currency = v.currency, description = v.description, \
                     changed_seq = v.changed_seq, updated_at = ",
                );
                q.push_bind(now);
                q.push(
                    " FROM v WHERE transactions.id = v.txn AND transactions.account_id = v.account",
                );
                q.build().persistent(false).execute(&mut *conn).await?;
            }
            for chunk in removed.chunks(CHUNK) {
                let mut q = sqlx::QueryBuilder::new("WITH v (txn, account, changed_seq) AS (");
                q.push_values(chunk, |mut row, (account, seq, id)| {
                    row.push_bind(*id).push_bind(*account).push_bind(*seq);
                });
                q.push(") UPDATE transactions SET removed = ");
                q.push_bind(true);
                q.push(", changed_seq = v.changed_seq, updated_at = ");
                q.push_bind(now);
                q.push(
                    " FROM v WHERE transactions.id = v.txn AND transactions.account_id = v.account",
                );
                q.build().persistent(false).execute(&mut *conn).await?;
            }
        });
        Ok(batch.iter().map(|a| a.changes.added.len() as u32).collect())
    }
}

/// [`Store::known_transactions`] on PostgreSQL; public for the test that checks its plan.
#[doc(hidden)]
pub const KNOWN_TRANSACTIONS_PG: &str = concat!(
    "SELECT t.* FROM unnest($1::uuid[], $2::text[]) AS w (account, since) \
     CROSS JOIN LATERAL (SELECT ",
    crate::accounts::txn_columns!(),
    " FROM transactions WHERE account_id = w.account AND removed = FALSE \
     AND (booking_date >= w.since OR status = 'pending') OFFSET 0) t"
);

impl Store {
    /// What reconciliation compares against, for several accounts in one read: each account's
    /// live transactions booked from its own date on, and every pending one.
    pub async fn known_transactions(
        &self,
        accounts: &[(AccountId, Date)],
    ) -> Result<HashMap<AccountId, Vec<KnownTxn>>> {
        let mut known: HashMap<AccountId, Vec<KnownTxn>> =
            accounts.iter().map(|(a, _)| (*a, Vec::new())).collect();
        if accounts.is_empty() {
            return Ok(known);
        }
        // PostgreSQL gets one fixed text, and a lateral join that OFFSET 0 keeps from being
        // flattened, so each account is read through its index whatever the planner believes:
        // without statistics (autovacuum off, or a table just grown) it chose a hash join over
        // a parallel scan of every transaction, 0.4 s a call.
        let found: Vec<Transaction> = match &self.backend {
            crate::Backend::Postgres(pool) => {
                let ids: Vec<Uuid> = accounts.iter().map(|(a, _)| a.0).collect();
                let since: Vec<String> = accounts.iter().map(|(_, d)| ymd(*d)).collect();
                sqlx::query(KNOWN_TRANSACTIONS_PG)
                    .bind(ids)
                    .bind(since)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(txn_from_row)
                    .collect::<Result<_, sqlx::Error>>()?
            }
            crate::Backend::Sqlite { reader, .. } => {
                let mut q = sqlx::QueryBuilder::new("WITH w (account, since) AS (");
                q.push_values(accounts, |mut row, (account, from)| {
                    row.push_bind(account.0).push_bind(ymd(*from));
                });
                q.push(concat!(
                    ") SELECT ",
                    crate::accounts::txn_columns!(),
                    " FROM transactions JOIN w ON account_id = w.account WHERE removed = FALSE \
                     AND (booking_date >= w.since OR status = 'pending')"
                ));
                q.build()
                    .fetch_all(reader)
                    .await?
                    .iter()
                    .map(txn_from_row)
                    .collect::<Result<_, sqlx::Error>>()?
            }
        };
        for t in found {
            known.entry(t.account_id).or_default().push(KnownTxn {
                id: t.id.0,
                txn: BankTxn {
                    provider_id: t.provider_transaction_id,
                    immutable_id: t.immutable_id,
                    status: t.status,
                    booking_date: t.booking_date,
                    amount: t.amount,
                    currency: t.currency,
                    description: t.description,
                },
            });
        }
        Ok(known)
    }
}
