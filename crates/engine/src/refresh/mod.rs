//! The refresh engine: links and consents through the bank's authorisation, refresh tasks
//! over a customer's banks, the runner that carries them out, and the scheduler.
//!
//! Every state change is written in one transaction with the events that record it; the
//! bank is called outside transactions, and what a sub-task found is written with its end, or
//! in two steps when the bank is slow, either of which a retried attempt can repeat (see
//! [`runner`]). Links and consents are in [`consents`], starting
//! tasks in [`tasks`].

mod consents;
mod ending;
mod erasure;
mod runner;
mod scheduler;
pub mod snapshots;
mod summary;
mod tasks;

use std::{sync::Arc, time::Duration};

use freshet_banks::{BankError, Connector, Provider};
use freshet_model::{
    ApplicationId, Customer, CustomerId, EventType,
    events::{EventData, Permission, RefreshTrigger},
    refresh::{Consent, SubTask},
};
use freshet_store::StoreError;
use time::{Date, OffsetDateTime};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    Engine,
    delivery::transaction::{OutboxTx, RefreshOrigin},
};

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
    /// How long a consent is asked for when the link names no expiry: every consent then has
    /// one, which the bank may shorten and `consent.expiring` warns of.
    pub default_consent_days: i64,
    /// How long a claimed sub-task stays this node's without a sign of life.
    pub lease: Duration,
    /// How often the scheduler looks for due refreshes and expiries.
    pub tick: Duration,
    /// Claims of one sub-task before it is failed with `internal_error`.
    pub max_attempts: i64,
    /// Where banks send the customer back: freshet's `/v1/consents/callback`.
    pub callback_url: String,
    /// This node's public URL: banks with `push` notify `{public_url}/v1/banks/{id}/notifications`.
    pub public_url: String,
    pub node: String,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            refreshes_per_day: 4,
            expiring_warning: Duration::from_secs(7 * 86_400),
            margin_days: 7,
            history_days: 90,
            default_consent_days: 90,
            lease: Duration::from_secs(60),
            tick: Duration::from_secs(10),
            max_attempts: 3,
            callback_url: "http://127.0.0.1:8080/v1/consents/callback".into(),
            public_url: "http://127.0.0.1:8080".into(),
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
    /// What asked for it: a client (the default), or the bank's own notification.
    pub trigger: RefreshTrigger,
}

/// What the bank sent the customer back with: the query of the plain flow, or the fragment
/// of the hybrid flow (`code` and `id_token`) that freshet's callback page posts back.
/// `Debug` hides the code and the ID token.
#[derive(Clone, Copy, Default)]
pub struct AuthorisationReturn<'a> {
    pub state: &'a str,
    pub code: Option<&'a str>,
    pub id_token: Option<&'a str>,
    pub error: Option<&'a str>,
}

impl std::fmt::Debug for AuthorisationReturn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use freshet_model::secret::redact;
        f.debug_struct("AuthorisationReturn")
            .field("state", &self.state)
            .field("code", &redact(&self.code))
            .field("id_token", &redact(&self.id_token))
            .field("error", &self.error)
            .finish()
    }
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
        engine
            .metrics()
            .know_providers(providers.iter().map(|p| p.id.as_str()));
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

    fn bank(&self, id: &str) -> Option<&(Provider, Connector)> {
        self.inner.banks.iter().find(|(p, _)| p.id == id)
    }

    /// Where a provider with `push` notifies this node of a consent's news.
    fn notification_uri(&self, provider: &Provider) -> Option<String> {
        provider.push.then(|| {
            format!(
                "{}/v1/banks/{}/notifications",
                self.inner.config.public_url.trim_end_matches('/'),
                provider.id
            )
        })
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

    async fn customer(&self, app: ApplicationId, id: CustomerId) -> Result<Customer, RefreshError> {
        self.store()
            .get_customer(app, id)
            .await?
            .ok_or(RefreshError::NotFound("customer"))
    }

    /// Begins a transaction to record events in; its commit hands them to the dispatcher.
    async fn begin(&self) -> Result<OutboxTx<'_>, StoreError> {
        self.inner.engine.begin().await
    }

    /// Records an event in `tx`.
    async fn record(
        &self,
        tx: &mut OutboxTx<'_>,
        app: ApplicationId,
        customer: CustomerId,
        t: EventType,
        data: EventData,
    ) -> Result<(), StoreError> {
        tx.record(app, Some(customer), data, t).await.map(drop)
    }

    /// Records the events of a sub-task of a refresh task in `tx`, in one write: they reach
    /// each endpoint in order, and vendor dialects only from refreshes they report
    /// ([`OutboxTx::record_refresh`]).
    async fn record_all(
        &self,
        tx: &mut OutboxTx<'_>,
        sub: &SubTask,
        events: Vec<(EventType, EventData)>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let origin = RefreshOrigin {
            task_id: sub.task_id.to_string(),
            trigger: sub.trigger,
        };
        tx.record_refresh(sub.application_id, sub.customer_id, &origin, events)
            .await
            .map(drop)
    }

    /// How events name a provider, also one this freshet no longer knows.
    fn provider_snapshot(&self, id: &str) -> freshet_model::events::ProviderSnapshot {
        self.bank(id).map_or_else(
            || snapshots::unknown_provider(id),
            |(p, _)| snapshots::provider(p),
        )
    }

    /// The next scheduled refresh after `now`: the day split by the refreshes allowed, with
    /// jitter so consents authorised together do not refresh together forever.
    fn next_refresh(&self, now: OffsetDateTime) -> OffsetDateTime {
        let per_day = self.inner.config.refreshes_per_day.max(1);
        let interval = 86_400.0 / f64::from(per_day);
        let jitter = 1.0 + (rand::random::<f64>() - 0.5) * 0.2;
        now + time::Duration::seconds_f64(interval * jitter)
    }
}

/// How long to wait between runner polls when nothing wakes it.
const POLL: Duration = Duration::from_millis(500);
