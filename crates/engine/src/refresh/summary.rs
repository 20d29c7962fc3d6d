//! The account summary: the accounts a sub-task found, the ids they are stored under, and the
//! interim stages: login success, reported on its own as soon as the bank listed the accounts,
//! and the account summary, reported with the accounts.
//!
//! It is planned before anything is written, with ids taken from what freshet holds, so the
//! transactions can be fetched before the accounts are stored. It is then written either on
//! its own, when the bank is slow enough for the interim stages to be worth reporting early,
//! or in the sub-task's final transaction: on SQLite's one writer a transaction less per
//! sub-task is most of a refresh cycle's speed.

use freshet_model::{
    EventType,
    events::{
        AccountChange, AccountChangeKind, EventData, RefreshProgress, RefreshStage, TaskStatus,
    },
    refresh::{Account, AccountId, Consent, SubTask},
};
use freshet_store::{AccountSummary, FoundAccount, StoreError, Tx};

use super::{Refresher, runner::Subject, snapshots};

/// What a sub-task found of the consent's accounts, not yet written.
pub struct Summary {
    /// Each listed account with the id it is (or will be) stored under, in the bank's order.
    accounts: Vec<(AccountId, FoundAccount)>,
    /// Accounts freshet held that the bank no longer lists.
    gone: Vec<AccountId>,
    changes: Vec<AccountChange>,
}

/// Whether the bank describes a held account as before: its names, currency and balances (the
/// time a balance was read at is not a change).
fn same(held: &Account, listed: &FoundAccount) -> bool {
    let balances =
        |b: &[freshet_model::refresh::Balance]| -> Vec<(String, rust_decimal::Decimal, String)> {
            b.iter()
                .map(|b| (b.kind.clone(), b.amount, b.currency.clone()))
                .collect()
        };
    held.currency == listed.currency
        && held.name == listed.name
        && held.kind == listed.kind
        && held.identification == listed.identification
        && balances(&held.balances) == balances(&listed.balances)
}

impl Summary {
    /// Matches the listed accounts to those held, by the bank's id: a held account keeps its
    /// id (a removed one comes back under it), an unknown one gets a new id.
    pub fn plan(listed: Vec<FoundAccount>, held: &[Account]) -> Self {
        let mut accounts: Vec<(AccountId, FoundAccount)> = Vec::with_capacity(listed.len());
        let mut changes = Vec::with_capacity(listed.len());
        for a in listed {
            let earlier = accounts
                .iter()
                .find(|(_, f)| f.bank_account_id == a.bank_account_id)
                .map(|(id, _)| *id);
            let known = held.iter().find(|h| h.bank_account_id == a.bank_account_id);
            let id = earlier
                .or(known.map(|h| h.id))
                .unwrap_or_else(AccountId::new);
            // Added when new (or back after it went), updated only when what the bank says
            // of it changed; an account the bank describes as before is no change at all.
            let change = match known {
                Some(h) if !h.removed && same(h, &a) => None,
                Some(h) if !h.removed => Some(AccountChangeKind::Updated),
                _ => Some(AccountChangeKind::Added),
            };
            if let (None, Some(change)) = (earlier, change) {
                changes.push(AccountChange {
                    account_id: id.to_string(),
                    change,
                });
            }
            accounts.push((id, a));
        }
        let gone: Vec<AccountId> = held
            .iter()
            .filter(|h| !h.removed && !accounts.iter().any(|(id, _)| *id == h.id))
            .map(|h| h.id)
            .collect();
        changes.extend(gone.iter().map(|id| AccountChange {
            account_id: id.to_string(),
            change: AccountChangeKind::Removed,
        }));
        Self {
            accounts,
            gone,
            changes,
        }
    }

    /// The listed accounts' ids, in the bank's order.
    pub fn ids(&self) -> Vec<AccountId> {
        self.accounts.iter().map(|(id, _)| *id).collect()
    }

    /// What changed among the accounts: added, updated, removed.
    pub fn changes(&self) -> &[AccountChange] {
        &self.changes
    }

    /// Stores the accounts in `tx`.
    pub async fn store(
        &self,
        tx: &mut Tx,
        sub: &SubTask,
        consent: &Consent,
    ) -> Result<(), StoreError> {
        tx.upsert_accounts(
            consent.application_id,
            consent.customer_id,
            consent.id,
            &sub.provider_id,
            &self.accounts,
        )
        .await?;
        tx.remove_accounts(&self.gone).await
    }

    /// Stores the accounts and moves the sub-task to its last interim stage in `tx`, ahead of
    /// its end; returns the stages to report, or `None` when the claim was lost.
    pub async fn write_ahead(
        &self,
        r: &Refresher,
        tx: &mut Tx,
        sub: &SubTask,
        token: &str,
        subject: &Subject,
    ) -> Result<Option<Vec<(EventType, EventData)>>, StoreError> {
        self.store(tx, sub, &subject.consent).await?;
        if !tx
            .reach_account_summary(
                sub.id,
                token,
                AccountSummary {
                    accounts: &self.ids(),
                    changes: &self.changes,
                },
            )
            .await?
        {
            return Ok(None);
        }
        Ok(Some(self.progress(r, sub, subject)))
    }

    /// The account summary stage to report, unless an earlier attempt reported it.
    pub fn progress(
        &self,
        r: &Refresher,
        sub: &SubTask,
        subject: &Subject,
    ) -> Vec<(EventType, EventData)> {
        if sub.stage == Some(RefreshStage::AccountSummaryReceived) {
            return Vec::new();
        }
        vec![stage(
            r,
            sub,
            subject,
            RefreshStage::AccountSummaryReceived,
            self.ids(),
        )]
    }
}

/// `refresh.progress` at login success: the bank accepted the tokens and listed the accounts
/// (which have no ids yet when new: they are stored with the account summary).
pub fn login_success(r: &Refresher, sub: &SubTask, subject: &Subject) -> (EventType, EventData) {
    stage(r, sub, subject, RefreshStage::LoginSuccess, Vec::new())
}

/// `refresh.progress` at `stage`, the sub-task running with `accounts`.
fn stage(
    r: &Refresher,
    sub: &SubTask,
    subject: &Subject,
    stage: RefreshStage,
    accounts: Vec<AccountId>,
) -> (EventType, EventData) {
    let mut running = sub.clone();
    running.status = TaskStatus::Running;
    running.account_ids = accounts;
    let data = EventData::RefreshProgress(RefreshProgress {
        customer: snapshots::customer(&subject.customer),
        task_id: sub.task_id.to_string(),
        trigger: sub.trigger,
        stage,
        sub_task: snapshots::sub_task(
            &running,
            r.provider_snapshot(&sub.provider_id),
            snapshots::link(&subject.link),
            &subject.consent,
        ),
    });
    (EventType::RefreshProgress, data)
}

#[cfg(test)]
mod tests {
    use freshet_model::{
        ApplicationId, CustomerId,
        refresh::{Account, ConsentId},
    };

    use super::*;

    fn listed(bank_id: &str) -> FoundAccount {
        FoundAccount {
            bank_account_id: bank_id.into(),
            currency: "GBP".into(),
            name: None,
            kind: None,
            identification: None,
            balances: Vec::new(),
        }
    }

    fn held(bank_id: &str, removed: bool) -> Account {
        let now = freshet_model::time::now();
        Account {
            id: AccountId::new(),
            application_id: ApplicationId::new(),
            customer_id: CustomerId::new(),
            consent_id: ConsentId::new(),
            provider_id: "natwest".into(),
            bank_account_id: bank_id.into(),
            currency: "GBP".into(),
            name: None,
            kind: None,
            identification: None,
            balances: Vec::new(),
            removed,
            last_booked_date: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn change(id: AccountId, change: AccountChangeKind) -> AccountChange {
        AccountChange {
            account_id: id.to_string(),
            change,
        }
    }

    #[test]
    fn held_accounts_keep_their_ids_and_the_rest_are_added_or_removed() {
        let (kept, back, gone) = (held("a", false), held("b", true), held("c", false));
        let already_gone = held("d", true);
        let held = [kept.clone(), back.clone(), gone.clone(), already_gone];
        let mut renamed = listed("a");
        renamed.name = Some("Holiday savings".into());
        let s = Summary::plan(vec![renamed, listed("b"), listed("new")], &held);
        let ids = s.ids();
        assert_eq!(ids[..2], [kept.id, back.id], "held accounts keep their ids");
        assert!(
            !held.iter().any(|h| h.id == ids[2]),
            "a new account gets a new id"
        );
        assert_eq!(
            s.gone,
            [gone.id],
            "only what was live and is no longer listed"
        );
        assert_eq!(
            s.changes,
            [
                change(kept.id, AccountChangeKind::Updated),
                change(back.id, AccountChangeKind::Added),
                change(ids[2], AccountChangeKind::Added),
                change(gone.id, AccountChangeKind::Removed),
            ]
        );
    }

    #[test]
    fn an_account_the_bank_describes_as_before_is_no_change() {
        let mut kept = held("a", false);
        kept.balances = vec![freshet_model::refresh::Balance {
            kind: "InterimAvailable".into(),
            amount: "10.50".parse().unwrap(),
            currency: "GBP".into(),
            at: None,
        }];
        let mut again = listed("a");
        again.balances = vec![freshet_model::refresh::Balance {
            at: Some(freshet_model::time::now()),
            amount: "10.5".parse().unwrap(),
            ..kept.balances[0].clone()
        }];
        let s = Summary::plan(vec![again.clone()], std::slice::from_ref(&kept));
        assert!(s.changes.is_empty(), "{:?}", s.changes);
        assert_eq!(s.ids(), [kept.id], "still listed, under its id");
        again.balances[0].amount = "9.5".parse().unwrap();
        let s = Summary::plan(vec![again], &[kept.clone()]);
        assert_eq!(s.changes, [change(kept.id, AccountChangeKind::Updated)]);
    }

    #[test]
    fn an_account_listed_twice_is_one_account() {
        let s = Summary::plan(vec![listed("a"), listed("a")], &[]);
        let ids = s.ids();
        assert_eq!(
            ids.len(),
            2,
            "the bank's order is kept for the transactions"
        );
        assert_eq!(ids[0], ids[1]);
        assert_eq!(s.changes, [change(ids[0], AccountChangeKind::Added)]);
    }
}
