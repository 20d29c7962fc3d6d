//! Reconciliation: what changed between the transactions freshet holds and what a bank returns.
//!
//! Banks make this hard (standards.md lists the failures aggregators hit): ids change when a
//! pending item books, ids are reused for new transactions, the same id appears on two accounts,
//! booking dates shift between fetches, rows repeat across pages, and genuine identical twins
//! (two coffees, same price, same day) exist. So matching runs in passes from strictest to
//! loosest, each pairing only what the previous left:
//!
//! 1. the same provider id, where the standard makes ids immutable;
//! 2. the same provider id and the same content (amount, currency, description);
//! 3. the same fingerprint (content, status and booking date), pairing as many as both sides
//!    have — occurrence counts, so twins survive;
//! 4. the same content within a few days (a shifted booking date, or pending → booked under a
//!    new id), nearest dates first.
//!
//! Whatever is still unmatched is added (fetched) or, if pending, removed (stored): a pending
//! item the bank no longer lists is gone, while a booked one outside the fetch is left alone.
//! Reconciliation runs per account, so an id shared by two accounts is two transactions.

use std::collections::HashMap;

use rust_decimal::Decimal;
use time::{Date, Duration};
use uuid::Uuid;

/// How far a booking date may move and still be the same transaction.
pub const DATE_TOLERANCE: Duration = Duration::days(5);

/// Whether a transaction has settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnStatus {
    Booked,
    Pending,
}

/// A transaction as a bank reports it, normalised by the connector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BankTxn {
    /// The bank's id, if it gives one.
    pub provider_id: Option<String>,
    /// The standard guarantees the id never changes (OBIE `Immutable`, Brasil `TRANSACAO_EFETIVADA`).
    pub immutable_id: bool,
    pub status: TxnStatus,
    pub booking_date: Date,
    /// Signed: negative leaves the account.
    pub amount: Decimal,
    pub currency: String,
    pub description: String,
}

/// Amount, currency and description: what stays the same when a bank re-dates, books or
/// re-identifies a transaction.
type Content = (Decimal, String, String);

fn content(t: &BankTxn) -> Content {
    let description = t
        .description
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    (t.amount.normalize(), t.currency.clone(), description)
}

/// A transaction freshet already holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownTxn {
    pub id: Uuid,
    pub txn: BankTxn,
}

/// What to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<BankTxn>,
    /// A held transaction whose bank record changed (booked, re-dated, re-identified).
    pub modified: Vec<(Uuid, BankTxn)>,
    pub removed: Vec<Uuid>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

/// Reconciles one account: `known` are the held transactions inside the fetched window,
/// `fetched` what the bank returned for it (repeats across pages included).
pub fn reconcile(known: &[KnownTxn], fetched: &[BankTxn]) -> Changes {
    let fetched = drop_page_repeats(fetched);
    let k_content: Vec<Content> = known.iter().map(|k| content(&k.txn)).collect();
    let f_content: Vec<Content> = fetched.iter().map(content).collect();
    let mut k_open = vec![true; known.len()];
    let mut f_open = vec![true; fetched.len()];
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut pair = |ki: usize, fi: usize, k_open: &mut Vec<bool>, f_open: &mut Vec<bool>| {
        k_open[ki] = false;
        f_open[fi] = false;
        pairs.push((ki, fi));
    };

    // Passes 1 and 2: provider ids.
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (ki, k) in known.iter().enumerate() {
        if let Some(pid) = &k.txn.provider_id {
            by_id.entry(pid).or_default().push(ki);
        }
    }
    for (fi, f) in fetched.iter().enumerate() {
        let Some(candidates) = f.provider_id.as_deref().and_then(|pid| by_id.get(pid)) else {
            continue;
        };
        let hit = candidates.iter().copied().find(|&ki| {
            k_open[ki]
                && ((known[ki].txn.immutable_id && f.immutable_id)
                    || k_content[ki] == f_content[fi])
        });
        if let Some(ki) = hit {
            pair(ki, fi, &mut k_open, &mut f_open);
        }
    }

    // Pass 3: fingerprints (content, status, date) with occurrence counts.
    let mut by_print: HashMap<(&Content, TxnStatus, Date), Vec<usize>> = HashMap::new();
    for ki in (0..known.len()).filter(|&ki| k_open[ki]) {
        let t = &known[ki].txn;
        by_print
            .entry((&k_content[ki], t.status, t.booking_date))
            .or_default()
            .push(ki);
    }
    for fi in 0..fetched.len() {
        if !f_open[fi] {
            continue;
        }
        let f = &fetched[fi];
        let slot = by_print.get_mut(&(&f_content[fi], f.status, f.booking_date));
        if let Some(ki) = slot.and_then(|v| (!v.is_empty()).then(|| v.remove(0))) {
            pair(ki, fi, &mut k_open, &mut f_open);
        }
    }

    // Pass 4: same content within the date tolerance, nearest dates first.
    let mut by_content: HashMap<&Content, Vec<usize>> = HashMap::new();
    for ki in (0..known.len()).filter(|&ki| k_open[ki]) {
        by_content.entry(&k_content[ki]).or_default().push(ki);
    }
    let mut candidates: Vec<(i64, usize, usize)> = Vec::new();
    for fi in (0..fetched.len()).filter(|&fi| f_open[fi]) {
        for &ki in by_content.get(&f_content[fi]).into_iter().flatten() {
            let gap = (fetched[fi].booking_date - known[ki].txn.booking_date).abs();
            if gap <= DATE_TOLERANCE {
                candidates.push((gap.whole_days(), ki, fi));
            }
        }
    }
    candidates.sort_unstable();
    for (_, ki, fi) in candidates {
        if k_open[ki] && f_open[fi] {
            pair(ki, fi, &mut k_open, &mut f_open);
        }
    }

    let mut changes = Changes::default();
    pairs.sort_unstable();
    for (ki, fi) in pairs {
        if known[ki].txn != fetched[fi] {
            changes.modified.push((known[ki].id, fetched[fi].clone()));
        }
    }
    for (ki, k) in known.iter().enumerate() {
        if k_open[ki] && k.txn.status == TxnStatus::Pending {
            changes.removed.push(k.id);
        }
    }
    changes.added = fetched
        .into_iter()
        .zip(f_open)
        .filter_map(|(f, open)| open.then_some(f))
        .collect();
    changes
}

/// Rows that repeat across pages carry the same provider id and content; rows without an id
/// cannot be told from twins, so only id-carrying repeats are dropped.
fn drop_page_repeats(fetched: &[BankTxn]) -> Vec<BankTxn> {
    let mut seen = std::collections::HashSet::new();
    fetched
        .iter()
        .filter(|t| t.provider_id.is_none() || seen.insert((*t).clone()))
        .cloned()
        .collect()
}

/// Where a re-fetch starts: the last booked date minus a margin (late-arriving and re-dated
/// items land behind it), never before the first day of history wanted.
pub fn refetch_from(last_booked: Option<Date>, margin: Duration, history_start: Date) -> Date {
    match last_booked {
        Some(d) => (d - margin).max(history_start),
        None => history_start,
    }
}

#[cfg(test)]
mod tests;
