//! Accounts and their transactions. Every write to an account's transactions takes the next
//! value of the account's change sequence and stamps it on what it touched, so sync is a
//! range read: what changed after the client's cursor.

use freshet_model::{
    ApplicationId, CustomerId, Page, PageRequest,
    reconcile::TxnStatus,
    refresh::{Account, AccountId, Balance, ConsentId, Transaction},
};
use rust_decimal::Decimal;
use time::{Date, macros::format_description};

use crate::{Result, Store, codec::RowExt, on_pool};

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
pub(crate) use txn_columns;

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

pub(crate) fn txn_from_row(r: &impl RowExt) -> Result<Transaction, sqlx::Error> {
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
