//! Starting refresh tasks: for a customer's banks, or one consent.

use std::collections::BTreeSet;

use freshet_model::{
    ApplicationId, ConsentStatus, CustomerId,
    events::{RefreshTrigger, TaskStatus},
    refresh::{Consent, ConsentId, SubTask, SubTaskId, Task, TaskId},
};
use freshet_store::{StoreError, TaskView, Tx};
use serde_json::json;
use time::Date;

use super::{RefreshError, RefreshRequest, Refresher, invalid};

impl Refresher {
    /// Starts a refresh of a customer's banks, or returns the one already running for them.
    pub async fn refresh_customer(
        &self,
        app: ApplicationId,
        customer: CustomerId,
        req: RefreshRequest,
    ) -> Result<TaskView, RefreshError> {
        self.customer(app, customer).await?;
        check_window(req.from, req.to)?;
        let consents = self.store().customer_consents(app, customer).await?;
        let usable: Vec<&Consent> = consents
            .iter()
            .filter(|c| c.status == ConsentStatus::Authorised)
            .collect();
        let chosen: Vec<&Consent> = match &req.providers {
            None => usable.clone(),
            Some(ids) => {
                if ids.is_empty() {
                    return Err(invalid(
                        "providers",
                        "must name at least one provider, or be left out",
                    ));
                }
                let mut chosen = Vec::new();
                for id in ids {
                    if self.bank(id).is_none() {
                        return Err(invalid("providers", format!("unknown provider `{id}`")));
                    }
                    let of: Vec<&Consent> = usable
                        .iter()
                        .copied()
                        .filter(|c| &c.provider_id == id)
                        .collect();
                    if of.is_empty() {
                        return Err(invalid(
                            "providers",
                            format!("the customer has no authorised consent at `{id}`"),
                        ));
                    }
                    chosen.extend(of);
                }
                chosen
            }
        };
        if chosen.is_empty() {
            return Err(invalid(
                "providers",
                "the customer has no authorised consent to refresh",
            ));
        }
        let wanted: BTreeSet<ConsentId> = chosen.iter().map(|c| c.id).collect();
        let same =
            |subs: &[SubTask]| subs.iter().map(|s| s.consent_id).collect::<BTreeSet<_>>() == wanted;
        Ok(self
            .join_or_start(app, customer, &chosen, &req, same)
            .await?)
    }

    /// Starts a refresh of one consent (Tatra banka's `PUT /refresh`); returns the task and
    /// the sub-task's id.
    pub async fn refresh_consent(
        &self,
        app: ApplicationId,
        id: ConsentId,
        customer_ip: Option<String>,
    ) -> Result<(TaskView, SubTaskId), RefreshError> {
        let consent = self
            .store()
            .get_consent(app, id)
            .await?
            .ok_or(RefreshError::NotFound("consent"))?;
        if consent.status != ConsentStatus::Authorised {
            return Err(invalid(
                "consent",
                format!("the consent is {}, not authorised", consent.status.as_str()),
            ));
        }
        let req = RefreshRequest {
            customer_ip,
            ..Default::default()
        };
        self.refresh_one(&consent, req).await
    }

    /// The bank notified freshet of new transactions on a consent's accounts (a provider with
    /// `push`): refreshes that consent now, as [`RefreshTrigger::BankNotification`], which
    /// spends none of its unattended budget. Only an authorised consent of that provider is
    /// refreshed; a refresh of it already under way is joined.
    pub async fn bank_notification(
        &self,
        provider_id: &str,
        bank_consent_id: &str,
    ) -> Result<(TaskView, SubTaskId), RefreshError> {
        if !self.bank(provider_id).is_some_and(|(p, _)| p.push) {
            return Err(RefreshError::NotFound("provider sending notifications"));
        }
        let consent = self
            .store()
            .consent_by_bank_id(provider_id, bank_consent_id)
            .await?
            .ok_or(RefreshError::NotFound("consent"))?;
        if consent.status != ConsentStatus::Authorised {
            return Err(invalid(
                "consentId",
                format!("the consent is {}, not authorised", consent.status.as_str()),
            ));
        }
        let req = RefreshRequest {
            trigger: RefreshTrigger::BankNotification,
            ..Default::default()
        };
        self.refresh_one(&consent, req).await
    }

    /// Joins the unfinished task refreshing `consent`, or starts one; returns the task and
    /// the consent's sub-task.
    async fn refresh_one(
        &self,
        consent: &Consent,
        req: RefreshRequest,
    ) -> Result<(TaskView, SubTaskId), RefreshError> {
        let (app, id) = (consent.application_id, consent.id);
        let has_it = |subs: &[SubTask]| subs.iter().any(|s| s.consent_id == id);
        let view = self
            .join_or_start(app, consent.customer_id, &[consent], &req, has_it)
            .await?;
        let sub = view
            .1
            .iter()
            .find(|s| s.consent_id == id)
            .map(|s| s.id)
            .ok_or_else(|| StoreError::Corrupt(format!("task {} lost its sub-task", view.0.id)))?;
        Ok((view, sub))
    }

    /// The customer's unfinished task that `joins` accepts, or a new one over `consents`.
    /// Whether one exists is asked again in the transaction that would start it: two requests
    /// at once must not both start a task (the bank would be asked twice, spending the
    /// consent's unattended refreshes), so when another request started one since, it is
    /// looked at too.
    async fn join_or_start(
        &self,
        app: ApplicationId,
        customer: CustomerId,
        consents: &[&Consent],
        req: &RefreshRequest,
        joins: impl Fn(&[SubTask]) -> bool,
    ) -> Result<TaskView, StoreError> {
        let mut tries = 0;
        loop {
            let open = self.store().open_tasks(app, customer).await?;
            let seen: Vec<TaskId> = open.iter().map(|(t, _)| t.id).collect();
            if let Some(found) = open.into_iter().find(|(_, subs)| joins(subs)) {
                return Ok(found);
            }
            let mut tx = self.store().begin().await?;
            tries += 1;
            // Tasks keep appearing only under a storm of requests: then, after a few looks,
            // start one rather than wait.
            if tries < 4 && tx.open_task_ids(app, customer).await? != seen {
                continue;
            }
            let view = insert_task(&mut tx, app, customer, consents, req, req.trigger).await?;
            tx.commit().await?;
            self.inner.wake.notify_one();
            return Ok(view);
        }
    }
}

/// Writes a task and its sub-tasks in `tx`.
pub(super) async fn insert_task(
    tx: &mut Tx,
    app: ApplicationId,
    customer: CustomerId,
    consents: &[&Consent],
    req: &RefreshRequest,
    trigger: RefreshTrigger,
) -> Result<TaskView, StoreError> {
    let now = freshet_model::time::now();
    let task = Task {
        id: TaskId::new(),
        application_id: app,
        customer_id: customer,
        status: TaskStatus::Pending,
        result: None,
        has_new_transactions: false,
        trigger,
        created_at: now,
        updated_at: now,
    };
    tx.insert_task(&task).await?;
    let mut subs = Vec::new();
    for c in consents {
        let sub = SubTask {
            id: SubTaskId::new(),
            task_id: task.id,
            application_id: app,
            customer_id: customer,
            consent_id: c.id,
            provider_id: c.provider_id.clone(),
            status: TaskStatus::Pending,
            result: None,
            reconnect_required: false,
            has_new_transactions: false,
            account_ids: Vec::new(),
            stage: None,
            account_changes: None,
            new_transactions: json!({}),
            attempts: 0,
            window_from: req.from,
            window_to: req.to,
            customer_ip: req.customer_ip.clone(),
            trigger,
            started_at: None,
            finished_at: None,
            created_at: now,
        };
        tx.insert_subtask(&sub).await?;
        subs.push(sub);
    }
    Ok((task, subs))
}

fn check_window(from: Option<Date>, to: Option<Date>) -> Result<(), RefreshError> {
    let today = freshet_model::time::now().date();
    if from.is_some_and(|f| f > today) {
        return Err(invalid("from", "must not be in the future"));
    }
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(invalid("to", "must not be before from"));
    }
    Ok(())
}
