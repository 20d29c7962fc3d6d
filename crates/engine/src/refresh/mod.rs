//! The refresh engine: links and consents through the bank's authorisation, refresh tasks
//! over a customer's banks, the runner that carries them out, and the scheduler.
//!
//! Every state change is written in one transaction with the events that record it; the
//! bank is called outside transactions, and what a call found is written in small steps that
//! a retried attempt can repeat (see [`runner`]).

mod runner;
mod scheduler;
pub mod snapshots;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use freshet_banks::{BankError, Connector, ConsentRequest, Provider};
use freshet_model::{
    ApplicationId, ConsentStatus, Customer, CustomerId, EventType,
    events::{ConsentChanged, EventData, LinkCreated, Permission, RefreshTrigger, TaskStatus},
    refresh::{
        BankTokens, Consent, ConsentId, Link, LinkId, SubTask, SubTaskId, Task, TaskId, integer_id,
    },
};
use freshet_store::{StoreError, TaskView, Tx};
use serde_json::json;
use time::{Date, OffsetDateTime};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::Engine;

/// How the refresh engine behaves.
#[derive(Clone, Debug)]
pub struct RefreshConfig {
    /// Scheduled refreshes per consent and day, never more than the banks' unattended budget.
    pub refreshes_per_day: u32,
    /// How long before expiry `consent.expiring` is sent.
    pub expiring_warning: Duration,
    /// Days re-fetched behind the last booked date: late and re-dated items land there.
    pub margin_days: i64,
    /// Days of history a first refresh imports.
    pub history_days: i64,
    /// How long a claimed sub-task stays this node's without a sign of life.
    pub lease: Duration,
    /// How often the scheduler looks for due refreshes and expiries.
    pub tick: Duration,
    /// Claims of one sub-task before it is failed with `internal_error`.
    pub max_attempts: i64,
    /// Where banks send the customer back: freshet's `/v1/consents/callback`.
    pub callback_url: String,
    pub node: String,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            refreshes_per_day: 4,
            expiring_warning: Duration::from_secs(7 * 86_400),
            margin_days: 7,
            history_days: 90,
            lease: Duration::from_secs(60),
            tick: Duration::from_secs(10),
            max_attempts: 3,
            callback_url: "http://127.0.0.1:8080/v1/consents/callback".into(),
            node: "freshet".into(),
        }
    }
}

/// Why a refresh-engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the bank refused: {0}")]
    Bank(BankError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> RefreshError {
    RefreshError::Invalid {
        field,
        message: message.into(),
    }
}

/// A link to create.
#[derive(Clone, Debug, Default)]
pub struct NewLink {
    pub provider_id: String,
    pub permissions: Option<Vec<Permission>>,
    pub expires_at: Option<OffsetDateTime>,
    pub external_track_id: Option<String>,
    /// Where to send the customer after the bank, instead of freshet's own page.
    pub redirect_url: Option<String>,
    pub customer_ip: Option<String>,
}

/// A refresh to start.
#[derive(Clone, Debug, Default)]
pub struct RefreshRequest {
    /// Only these providers; all the customer's authorised consents when `None`.
    pub providers: Option<Vec<String>>,
    pub from: Option<Date>,
    pub to: Option<Date>,
    /// The customer is present: sent to the bank, and the calls are exempt from its budget.
    pub customer_ip: Option<String>,
}

/// What the OAuth callback did.
#[derive(Clone, Debug)]
pub struct Callback {
    pub consent: Consent,
    pub authorised: bool,
    pub detail: Option<String>,
}

/// The refresh engine of one node: cheap to clone.
#[derive(Clone)]
pub struct Refresher {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    banks: Vec<(Provider, Connector)>,
    config: RefreshConfig,
    wake: Notify,
}

impl Refresher {
    pub fn new(engine: Engine, providers: Vec<Provider>, config: RefreshConfig) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let banks = providers
            .into_iter()
            .map(|p| (p.clone(), Connector::new(p, client.clone())))
            .collect();
        Self {
            inner: Arc::new(Inner {
                engine,
                banks,
                config,
                wake: Notify::new(),
            }),
        }
    }

    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.inner.banks.iter().map(|(p, _)| p)
    }

    pub fn config(&self) -> &RefreshConfig {
        &self.inner.config
    }

    fn bank(&self, id: &str) -> Option<&(Provider, Connector)> {
        self.inner.banks.iter().find(|(p, _)| p.id == id)
    }

    fn store(&self) -> &freshet_store::Store {
        &self.inner.engine.store
    }

    /// Starts the runner and the scheduler; they stop when `stop` is cancelled.
    pub fn spawn(&self, stop: CancellationToken) -> JoinHandle<()> {
        let runner = tokio::spawn(runner::run(self.clone(), stop.clone()));
        let scheduler = tokio::spawn(scheduler::run(self.clone(), stop));
        tokio::spawn(async move {
            let _ = runner.await;
            let _ = scheduler.await;
        })
    }

    /// One scheduler pass, for tests and benchmarks that drive time themselves.
    pub async fn schedule_once(&self) -> Result<(), StoreError> {
        scheduler::pass(self).await
    }

    async fn customer(&self, app: ApplicationId, id: CustomerId) -> Result<Customer, RefreshError> {
        self.store()
            .get_customer(app, id)
            .await?
            .ok_or(RefreshError::NotFound("customer"))
    }

    /// Records an event in `tx`.
    async fn record(
        &self,
        tx: &mut Tx,
        app: ApplicationId,
        customer: CustomerId,
        t: EventType,
        data: EventData,
    ) -> Result<(), StoreError> {
        self.inner
            .engine
            .record(tx, app, Some(customer), data, t)
            .await
            .map(|_| ())
    }

    /// Records several events of one customer in `tx`, in one write.
    async fn record_all(
        &self,
        tx: &mut Tx,
        app: ApplicationId,
        customer: CustomerId,
        events: Vec<(EventType, EventData)>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.inner
            .engine
            .record_all(tx, app, Some(customer), events)
            .await
            .map(|_| ())
    }

    fn delivered(&self) {
        self.inner.engine.wake_dispatcher();
    }

    /// The next scheduled refresh after `now`: the day split by the refreshes allowed, with
    /// jitter so consents authorised together do not refresh together forever.
    fn next_refresh(&self, now: OffsetDateTime) -> OffsetDateTime {
        let per_day = self.inner.config.refreshes_per_day.max(1);
        let interval = 86_400.0 / f64::from(per_day);
        let jitter = 1.0 + (rand::random::<f64>() - 0.5) * 0.2;
        now + time::Duration::seconds_f64(interval * jitter)
    }

    /// Creates a link and its consent at the bank; the consent then awaits the customer at
    /// its authorisation URL.
    pub async fn create_link(
        &self,
        app: ApplicationId,
        customer_id: CustomerId,
        req: NewLink,
    ) -> Result<(Link, Consent), RefreshError> {
        let customer = self.customer(app, customer_id).await?;
        let (provider, connector) = self.bank(&req.provider_id).ok_or_else(|| {
            invalid(
                "provider_id",
                format!(
                    "unknown provider `{}`; GET /v1/providers lists them",
                    req.provider_id
                ),
            )
        })?;
        let now = freshet_model::time::now();
        if req.expires_at.is_some_and(|e| e <= now) {
            return Err(invalid("expires_at", "must be in the future"));
        }
        if provider.standard == freshet_banks::Standard::OpenFinanceBrasil
            && customer.personal_tax_id.is_none()
        {
            return Err(invalid(
                "provider_id",
                "Open Finance Brasil consents name the customer: set the customer's personal_tax_id (CPF) first",
            ));
        }
        let permissions = req
            .permissions
            .clone()
            .unwrap_or_else(|| vec![Permission::RegistrationAll, Permission::AccountsAll]);
        if permissions.is_empty() {
            return Err(invalid("permissions", "must name at least one permission"));
        }
        let bank = connector
            .create_consent(&ConsentRequest {
                permissions: permissions.clone(),
                expires_at: req.expires_at,
                history_from: now.date() - time::Duration::days(self.inner.config.history_days),
                customer_tax_id: customer.personal_tax_id.clone(),
                customer_ip: req.customer_ip.clone(),
            })
            .await
            .map_err(RefreshError::Bank)?;
        let state = secret();
        let url = connector.authorisation_url(&bank, &self.inner.config.callback_url, &state);
        let link_id = LinkId::new();
        let link = Link {
            id: link_id,
            application_id: app,
            customer_id,
            provider_id: provider.id.clone(),
            number: integer_id(link_id.0),
            external_track_id: req.external_track_id.clone(),
            created_at: now,
        };
        let consent = Consent {
            id: ConsentId::new(),
            application_id: app,
            customer_id,
            link_id,
            provider_id: provider.id.clone(),
            status: ConsentStatus::AwaitingAuthorisation,
            bank_consent_id: bank.bank_consent_id,
            permissions_requested: permissions,
            permissions_granted: Vec::new(),
            expires_at: bank.expires_at.or(req.expires_at),
            external_track_id: req.external_track_id,
            reconnect_required: false,
            authorisation_url: Some(url),
            redirect_url: req.redirect_url,
            next_refresh_at: None,
            last_refreshed_at: None,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store().begin().await?;
        tx.insert_link(&link).await?;
        tx.insert_consent(&consent, &state).await?;
        let data = EventData::LinkCreated(LinkCreated {
            customer: snapshots::customer(&customer),
            provider: snapshots::provider(provider),
            link: snapshots::link(&link),
        });
        self.record(&mut tx, app, customer_id, EventType::LinkCreated, data)
            .await?;
        tx.commit().await?;
        self.delivered();
        Ok((link, consent))
    }

    /// A `consent.*` event's payload.
    async fn consent_event(
        &self,
        consent: &Consent,
        reason: Option<String>,
    ) -> Result<EventData, RefreshError> {
        let customer = self
            .customer(consent.application_id, consent.customer_id)
            .await?;
        let link = self
            .store()
            .link(consent.link_id)
            .await?
            .ok_or(RefreshError::NotFound("link"))?;
        let provider = self.bank(&consent.provider_id).map_or_else(
            || snapshots::unknown_provider(&consent.provider_id),
            |(p, _)| snapshots::provider(p),
        );
        Ok(EventData::Consent(ConsentChanged {
            customer: snapshots::customer(&customer),
            provider,
            link: snapshots::link(&link),
            consent: snapshots::consent(consent),
            reason,
        }))
    }

    /// Moves a consent and records the event saying so, in one transaction; false when the
    /// consent was not in a state it could move from.
    async fn move_consent(
        &self,
        consent: &Consent,
        from: &[ConsentStatus],
        to: ConsentStatus,
        event: EventType,
        reason: Option<String>,
    ) -> Result<bool, RefreshError> {
        let moved = Consent {
            status: to,
            updated_at: freshet_model::time::now(),
            ..consent.clone()
        };
        let data = self.consent_event(&moved, reason).await?;
        let mut tx = self.store().begin().await?;
        if !tx.move_consent(consent.id, from, to).await? {
            return Ok(false);
        }
        self.record(
            &mut tx,
            consent.application_id,
            consent.customer_id,
            event,
            data,
        )
        .await?;
        tx.commit().await?;
        self.delivered();
        Ok(true)
    }

    /// The bank sent the customer back: exchange the code, or record the refusal.
    pub async fn complete_authorisation(
        &self,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<Callback, RefreshError> {
        let consent = self
            .store()
            .consent_by_state(state)
            .await?
            .ok_or(RefreshError::NotFound(
                "authorisation in progress for this state",
            ))?;
        if let Some(error) = error {
            return match error {
                "access_denied" => {
                    self.refuse(
                        &consent,
                        ConsentStatus::Rejected,
                        EventType::ConsentRejected,
                        "the customer rejected the consent at the bank".into(),
                    )
                    .await
                }
                other => {
                    self.refuse(
                        &consent,
                        ConsentStatus::Error,
                        EventType::ConsentError,
                        format!("the bank answered the authorisation with `{other}`"),
                    )
                    .await
                }
            };
        }
        let Some(code) = code else {
            return Err(invalid(
                "code",
                "the callback carries neither a code nor an error",
            ));
        };
        let (_, connector) = self
            .bank(&consent.provider_id)
            .ok_or(RefreshError::NotFound("provider"))?;
        let tokens = match connector
            .exchange_code(code, &self.inner.config.callback_url)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                return self
                    .refuse(
                        &consent,
                        ConsentStatus::Error,
                        EventType::ConsentError,
                        format!("exchanging the code failed: {}", e.detail),
                    )
                    .await;
            }
        };
        let now = freshet_model::time::now();
        let authorised = Consent {
            status: ConsentStatus::Authorised,
            permissions_granted: consent.permissions_requested.clone(),
            authorisation_url: None,
            updated_at: now,
            // The first import starts with the scheduler's next pass.
            next_refresh_at: Some(now),
            ..consent.clone()
        };
        let data = self.consent_event(&authorised, None).await?;
        let mut tx = self.store().begin().await?;
        let bank_tokens = BankTokens {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: tokens.expires_at,
        };
        if !tx
            .authorise_consent(
                consent.id,
                &bank_tokens,
                &authorised.permissions_granted,
                now,
            )
            .await?
        {
            return Err(invalid(
                "state",
                "this consent is no longer awaiting authorisation",
            ));
        }
        self.record(
            &mut tx,
            consent.application_id,
            consent.customer_id,
            EventType::ConsentAuthorised,
            data,
        )
        .await?;
        tx.commit().await?;
        self.delivered();
        Ok(Callback {
            consent: authorised,
            authorised: true,
            detail: None,
        })
    }

    /// A consent the customer or the bank did not authorise.
    async fn refuse(
        &self,
        consent: &Consent,
        status: ConsentStatus,
        event: EventType,
        detail: String,
    ) -> Result<Callback, RefreshError> {
        self.move_consent(
            consent,
            &[ConsentStatus::AwaitingAuthorisation],
            status,
            event,
            Some(detail.clone()),
        )
        .await?;
        let consent = self
            .store()
            .consent(consent.id)
            .await?
            .unwrap_or_else(|| consent.clone());
        Ok(Callback {
            consent,
            authorised: false,
            detail: Some(detail),
        })
    }

    /// Ends a consent: at the bank (best effort: the customer's wish stands even if the bank
    /// is down), then in freshet.
    pub async fn revoke(&self, app: ApplicationId, id: ConsentId) -> Result<Consent, RefreshError> {
        let consent = self
            .store()
            .get_consent(app, id)
            .await?
            .ok_or(RefreshError::NotFound("consent"))?;
        if consent.status.is_terminal() {
            return Ok(consent);
        }
        if let (Some((_, connector)), Some(tokens)) = (
            self.bank(&consent.provider_id),
            self.store().consent_tokens(id).await?,
        ) {
            let session = freshet_banks::Session {
                bank_consent_id: &consent.bank_consent_id,
                access_token: &tokens.access_token,
                customer_ip: None,
            };
            if let Err(e) = connector.revoke(&session).await {
                tracing::warn!(consent = %id, error = %e, "the bank did not confirm the revocation");
            }
        }
        self.move_consent(
            &consent,
            &[
                ConsentStatus::AwaitingAuthorisation,
                ConsentStatus::Authorised,
            ],
            ConsentStatus::Revoked,
            EventType::ConsentRevoked,
            Some("revoked by the client".into()),
        )
        .await?;
        Ok(self.store().get_consent(app, id).await?.unwrap_or(consent))
    }

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
        for (task, subs) in self.store().open_tasks(app, customer).await? {
            if subs.iter().map(|s| s.consent_id).collect::<BTreeSet<_>>() == wanted {
                return Ok((task, subs));
            }
        }
        let view = self
            .start_task(app, customer, &chosen, &req, RefreshTrigger::Manual)
            .await?;
        Ok(view)
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
        for (task, subs) in self.store().open_tasks(app, consent.customer_id).await? {
            if let Some(s) = subs.iter().find(|s| s.consent_id == id) {
                let sub = s.id;
                return Ok(((task, subs), sub));
            }
        }
        let req = RefreshRequest {
            customer_ip,
            ..Default::default()
        };
        let view = self
            .start_task(
                app,
                consent.customer_id,
                &[&consent],
                &req,
                RefreshTrigger::Manual,
            )
            .await?;
        let sub = view.1[0].id;
        Ok((view, sub))
    }

    async fn start_task(
        &self,
        app: ApplicationId,
        customer: CustomerId,
        consents: &[&Consent],
        req: &RefreshRequest,
        trigger: RefreshTrigger,
    ) -> Result<TaskView, StoreError> {
        let mut tx = self.store().begin().await?;
        let view = insert_task(&mut tx, app, customer, consents, req, trigger).await?;
        tx.commit().await?;
        self.inner.wake.notify_one();
        Ok(view)
    }
}

/// Writes a task and its sub-tasks in `tx`.
async fn insert_task(
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

/// An unguessable OAuth `state`.
fn secret() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long to wait between runner polls when nothing wakes it.
const POLL: Duration = Duration::from_millis(500);
