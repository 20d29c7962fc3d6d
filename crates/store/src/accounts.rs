//! Accounts and their transactions. Every write to an account's transactions takes the next
//! value of the account's change sequence and stamps it on what it touched, so sync is a
//! range read: what changed after the client's cursor.

use freshet_model::{
    ApplicationId, CustomerId, Page, PageRequest,
    reconcile::{BankTxn, Changes, KnownTxn, TxnStatus},
    refresh::{Account, AccountId, Balance, ConsentId, Transaction, TransactionId},
};
use rust_decimal::Decimal;
use sqlx::types::Json;
use time::{Date, macros::format_description};
use uuid::Uuid;

use crate::{
    Result, Store, StoreError, Tx,
    codec::{RowExt, Ts},
    on_pool, on_tx,
};

const YMD: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

pub(crate) fn ymd(d: Date) -> String {
    d.format(YMD).expect("dates format")
}

pub(crate) fn parse_ymd(col: &str, s: &str) -> Result<Date, sqlx::Error> {
    Date::parse(s, YMD).map_err(|e| sqlx::Error::ColumnDecode {
        index: col.to_string(),
        source: Box::new(e),
    })
}

macro_rules! account_columns {
    () => {
        "id, application_id, customer_id, consent_id, provider_id, bank_account_id, currency, \
         name, kind, identification, balances, removed, last_booked_date, created_at, updated_at"
    };
}

macro_rules! txn_columns {
    () => {
        "id, account_id, provider_transaction_id, immutable_id, status, booking_date, amount, \
         currency, description, removed, created_seq, changed_seq, created_at, updated_at"
    };
}

fn account_from_row(r: &impl RowExt) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: r.uuid("id")?.into(),
        application_id: r.uuid("application_id")?.into(),
        customer_id: r.uuid("customer_id")?.into(),
        consent_id: r.uuid("consent_id")?.into(),
        provider_id: r.text("provider_id")?,
        bank_account_id: r.text("bank_account_id")?,
        currency: r.text("currency")?,
        name: r.opt_text("name")?,
        kind: r.opt_text("kind")?,
        identification: r.opt_text("identification")?,
        balances: r.opt_json::<Vec<Balance>>("balances")?.unwrap_or_default(),
        removed: r.bool("removed")?,
        last_booked_date: r
            .opt_text("last_booked_date")?
            .map(|d| parse_ymd("last_booked_date", &d))
            .transpose()?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn txn_from_row(r: &impl RowExt) -> Result<Transaction, sqlx::Error> {
    let status = r.text("status")?;
    let amount = r.text("amount")?;
    Ok(Transaction {
        id: r.uuid("id")?.into(),
        account_id: r.uuid("account_id")?.into(),
        provider_transaction_id: r.opt_text("provider_transaction_id")?,
        immutable_id: r.bool("immutable_id")?,
        status: TxnStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("transaction status {status}").into()))?,
        booking_date: parse_ymd("booking_date", &r.text("booking_date")?)?,
        amount: amount
            .parse::<Decimal>()
            .map_err(|e| sqlx::Error::Decode(format!("amount {amount}: {e}").into()))?,
        currency: r.text("currency")?,
        description: r.text("description")?,
        removed: r.bool("removed")?,
        created_seq: r.i64("created_seq")?,
        changed_seq: r.i64("changed_seq")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// An account as a sub-task found it at the bank.
#[derive(Clone, Debug)]
pub struct FoundAccount {
    pub bank_account_id: String,
    pub currency: String,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub identification: Option<String>,
    pub balances: Vec<Balance>,
}

/// Which transactions to list.
#[derive(Clone, Debug, Default)]
pub struct TxnFilter {
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub status: Option<TxnStatus>,
}

/// A page of sync: what changed after a cursor.
#[derive(Clone, Debug, Default)]
pub struct SyncPage {
    pub added: Vec<Transaction>,
    pub modified: Vec<Transaction>,
    pub removed: Vec<Transaction>,
    /// The sequence to pass next time.
    pub next_seq: i64,
    pub has_more: bool,
}

impl Tx {
    /// Inserts or updates an account of a consent; returns its id and whether it was new.
    pub async fn upsert_account(
        &mut self,
        app: ApplicationId,
        customer: CustomerId,
        consent: ConsentId,
        provider_id: &str,
        a: &FoundAccount,
    ) -> Result<(AccountId, bool)> {
        let now = freshet_model::time::now();
        let id = AccountId::new();
        let got: Uuid = on_tx!(self, |conn| {
            sqlx::query(
                "INSERT INTO accounts (id, application_id, customer_id, consent_id, provider_id, \
                 bank_account_id, currency, name, kind, identification, balances, removed, seq, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, $13) \
                 ON CONFLICT (consent_id, bank_account_id) DO UPDATE SET currency = excluded.currency, \
                 name = excluded.name, kind = excluded.kind, identification = excluded.identification, \
                 balances = excluded.balances, removed = excluded.removed, updated_at = excluded.updated_at \
                 RETURNING id",
            )
            .bind(id.0)
            .bind(app.0)
            .bind(customer.0)
            .bind(consent.0)
            .bind(provider_id)
            .bind(&a.bank_account_id)
            .bind(&a.currency)
            .bind(&a.name)
            .bind(&a.kind)
            .bind(&a.identification)
            .bind(Json(&a.balances))
            .bind(false)
            .bind(Ts(now))
            .fetch_one(&mut *conn)
            .await?
            .uuid("id")?
        });
        let got = AccountId(got);
        Ok((got, got == id))
    }

    /// Marks a consent's accounts not in `keep` removed; returns those newly removed.
    pub async fn remove_accounts_except(
        &mut self,
        consent: ConsentId,
        keep: &[AccountId],
    ) -> Result<Vec<AccountId>> {
        let keep: Vec<Uuid> = keep.iter().map(|a| a.0).collect();
        let now = freshet_model::time::now();
        let ids: Vec<Uuid> = on_tx!(self, |conn| {
            let rows =
                sqlx::query("SELECT id FROM accounts WHERE consent_id = $1 AND removed = $2")
                    .bind(consent.0)
                    .bind(false)
                    .fetch_all(&mut *conn)
                    .await?;
            let mut gone = Vec::new();
            for r in &rows {
                let id = r.uuid("id")?;
                if !keep.contains(&id) {
                    sqlx::query("UPDATE accounts SET removed = $2, updated_at = $3 WHERE id = $1")
                        .bind(id)
                        .bind(true)
                        .bind(Ts(now))
                        .execute(&mut *conn)
                        .await?;
                    gone.push(id);
                }
            }
            gone
        });
        Ok(ids.into_iter().map(AccountId).collect())
    }

    /// Writes one account's reconciled changes under the account's next change sequence;
    /// returns how many transactions were added.
    pub async fn apply_changes(
        &mut self,
        account: AccountId,
        changes: &Changes,
        last_booked: Option<Date>,
    ) -> Result<u32> {
        let now = freshet_model::time::now();
        if changes.is_empty() {
            // Nothing changed: keep the sequence, move only the re-fetch point.
            on_tx!(self, |conn| {
                sqlx::query("UPDATE accounts SET last_booked_date = COALESCE($2, last_booked_date) WHERE id = $1")
                    .bind(account.0)
                    .bind(last_booked.map(ymd))
                    .execute(&mut *conn)
                    .await?;
            });
            return Ok(0);
        }
        on_tx!(self, |conn| {
            let seq = sqlx::query(
                "UPDATE accounts SET seq = seq + 1, last_booked_date = COALESCE($2, last_booked_date), \
                 updated_at = $3 WHERE id = $1 RETURNING seq",
            )
            .bind(account.0)
            .bind(last_booked.map(ymd))
            .bind(Ts(now))
            .fetch_one(&mut *conn)
            .await?
            .i64("seq")?;
            for chunk in changes.added.chunks(1_000) {
                let mut q = sqlx::QueryBuilder::new(concat!(
                    "INSERT INTO transactions (",
                    txn_columns!(),
                    ") "
                ));
                q.push_values(chunk, |mut row, t| {
                    row.push_bind(TransactionId::new().0)
                        .push_bind(account.0)
                        .push_bind(&t.provider_id)
                        .push_bind(t.immutable_id)
                        .push_bind(t.status.as_str())
                        .push_bind(ymd(t.booking_date))
                        .push_bind(t.amount.to_string())
                        .push_bind(&t.currency)
                        .push_bind(&t.description)
                        .push_bind(false)
                        .push_bind(seq)
                        .push_bind(seq)
                        .push_bind(Ts(now))
                        .push_bind(Ts(now));
                });
                q.build().execute(&mut *conn).await?;
            }
            for (id, t) in &changes.modified {
                sqlx::query(
                    "UPDATE transactions SET provider_transaction_id = $3, immutable_id = $4, \
                     status = $5, booking_date = $6, amount = $7, currency = $8, description = $9, \
                     changed_seq = $10, updated_at = $11 WHERE id = $1 AND account_id = $2",
                )
                .bind(id)
                .bind(account.0)
                .bind(&t.provider_id)
                .bind(t.immutable_id)
                .bind(t.status.as_str())
                .bind(ymd(t.booking_date))
                .bind(t.amount.to_string())
                .bind(&t.currency)
                .bind(&t.description)
                .bind(seq)
                .bind(Ts(now))
                .execute(&mut *conn)
                .await?;
            }
            for id in &changes.removed {
                sqlx::query(
                    "UPDATE transactions SET removed = $3, changed_seq = $4, updated_at = $5 \
                     WHERE id = $1 AND account_id = $2",
                )
                .bind(id)
                .bind(account.0)
                .bind(true)
                .bind(seq)
                .bind(Ts(now))
                .execute(&mut *conn)
                .await?;
            }
        });
        Ok(changes.added.len() as u32)
    }
}

impl Store {
    pub async fn consent_accounts(&self, consent: ConsentId) -> Result<Vec<Account>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE consent_id = $1 ORDER BY id"
            ))
            .bind(consent.0)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(account_from_row)
                .collect::<Result<_, _>>()?)
        })
    }

    /// A customer's accounts, removed ones included (they say so).
    pub async fn customer_accounts(
        &self,
        app: ApplicationId,
        customer: CustomerId,
    ) -> Result<Vec<Account>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE customer_id = $1 AND application_id = $2 ORDER BY id"
            ))
            .bind(customer.0)
            .bind(app.0)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(account_from_row)
                .collect::<Result<_, _>>()?)
        })
    }

    pub async fn get_account(&self, app: ApplicationId, id: AccountId) -> Result<Option<Account>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts WHERE id = $1 AND application_id = $2"
            ))
            .bind(id.0)
            .bind(app.0)
            .fetch_optional(pool)
            .await?;
            Ok(row.as_ref().map(account_from_row).transpose()?)
        })
    }

    /// An account's live transactions booked in `[from, to]`, oldest first: what a data
    /// product covers.
    pub async fn transactions_between(
        &self,
        account: AccountId,
        from: Date,
        to: Date,
    ) -> Result<Vec<Transaction>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                txn_columns!(),
                " FROM transactions WHERE account_id = $1 AND removed = $2 \
                 AND booking_date >= $3 AND booking_date <= $4 ORDER BY booking_date, id"
            ))
            .bind(account.0)
            .bind(false)
            .bind(ymd(from))
            .bind(ymd(to))
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(txn_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// What reconciliation compares against: the account's live transactions booked from
    /// `from` on, and every pending one.
    pub async fn known_transactions(
        &self,
        account: AccountId,
        from: Date,
    ) -> Result<Vec<KnownTxn>> {
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                txn_columns!(),
                " FROM transactions WHERE account_id = $1 AND removed = $2 \
                 AND (booking_date >= $3 OR status = 'pending')"
            ))
            .bind(account.0)
            .bind(false)
            .bind(ymd(from))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let t = txn_from_row(r)?;
                    Ok(KnownTxn {
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
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// An account's live transactions, newest first.
    pub async fn list_transactions(
        &self,
        account: AccountId,
        f: &TxnFilter,
        page: PageRequest,
    ) -> Result<Page<Transaction>> {
        let after = page.after.map(|c| c.0);
        let limit = page.limit;
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                txn_columns!(),
                " FROM transactions WHERE account_id = $1 AND removed = $2 \
                 AND ($3 IS NULL OR booking_date >= $3) AND ($4 IS NULL OR booking_date <= $4) \
                 AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR id < $6) \
                 ORDER BY id DESC LIMIT $7"
            ))
            .bind(account.0)
            .bind(false)
            .bind(f.from.map(ymd))
            .bind(f.to.map(ymd))
            .bind(f.status.map(|s| s.as_str()))
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?;
            let data: Vec<Transaction> = rows.iter().map(txn_from_row).collect::<Result<_, _>>()?;
            Ok(Page::from_overfetch(data, limit, |t| t.id.0))
        })
    }

    /// What changed on an account after change sequence `after`, at most `limit` rows.
    pub async fn sync_transactions(
        &self,
        account: AccountId,
        after: i64,
        limit: u32,
    ) -> Result<SyncPage> {
        on_pool!(self, read, |pool| {
            // Whole sequence steps only, so a cursor never splits one write.
            let rows = sqlx::query(concat!(
                "SELECT ",
                txn_columns!(),
                " FROM transactions WHERE account_id = $1 AND changed_seq > $2 \
                 ORDER BY changed_seq, id LIMIT $3"
            ))
            .bind(account.0)
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await?;
            let mut rows: Vec<Transaction> =
                rows.iter().map(txn_from_row).collect::<Result<_, _>>()?;
            let has_more = rows.len() > limit as usize;
            if has_more {
                let cut = rows[limit as usize].changed_seq;
                rows.retain(|t| t.changed_seq < cut);
                if rows.is_empty() {
                    // One write larger than a page: return it whole rather than stall.
                    return Box::pin(self.sync_transactions(account, after, limit * 4 + 1)).await;
                }
            }
            let next_seq = rows.last().map_or(after, |t| t.changed_seq);
            let mut page = SyncPage {
                next_seq,
                has_more,
                ..Default::default()
            };
            for t in rows {
                if t.removed {
                    if t.created_seq <= after {
                        page.removed.push(t);
                    }
                } else if t.created_seq > after {
                    page.added.push(t);
                } else {
                    page.modified.push(t);
                }
            }
            Ok(page)
        })
    }
}
