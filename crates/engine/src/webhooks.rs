//! Webhook endpoints: the rules for creating and changing them, test events, replays, and
//! recording events so they reach every subscribed endpoint.
//!
//! The API calls these and maps the results; every rule about what an endpoint may be lives
//! here or, for a dialect's own rules (Tatra banka: no query parameters, a restricted security
//! header), in `Dialect::check_endpoint`; Tatra's activation at the next full hour is here.

use std::sync::Arc;

use freshet_dialects::Dialect;
use freshet_model::{
    ApplicationId, CustomerId, EventType, FieldError, Patch, Validation,
    events::{EndpointDisabled, EndpointTest, EventData, RefreshTrigger},
    webhooks::{EndpointId, EventId, WebhookEndpoint},
};
use freshet_store::{Fanout, NewEndpoint, Store, StoreError, StoredEvent, Tx};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::{
    Engine,
    delivery::{
        record::{Ready, Target, record_leased},
        render as formats,
        retry::validate_schedule,
        target::{Refusal, TargetPolicy},
    },
    signing_keys::SigningKeys,
};

/// The refresh task events come from.
#[derive(Clone, Debug)]
pub struct RefreshOrigin {
    pub task_id: String,
    pub trigger: RefreshTrigger,
}

/// Longest description and partner app id.
const MAX_DESCRIPTION: usize = 500;
const MAX_PARTNER_APP_ID: usize = 64;
const MAX_SECURITY_HEADER: usize = 1024;
/// How long a rotated-out secret keeps signing, by default and at most.
pub const DEFAULT_OVERLAP: Duration = Duration::hours(24);
const MAX_OVERLAP: Duration = Duration::days(7);

/// When an endpoint starts receiving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Immediate,
    /// At the next full hour (Tatra banka's rule, and its default).
    NextHour,
}

impl Activation {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "immediate" => Ok(Self::Immediate),
            "next_hour" => Ok(Self::NextHour),
            _ => Err("must be `immediate` or `next_hour`".into()),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::NextHour => "next_hour",
        }
    }

    fn start(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Self::Immediate => now,
            Self::NextHour => {
                let hour = now
                    .replace_minute(0)
                    .and_then(|t| t.replace_second(0))
                    .and_then(|t| t.replace_nanosecond(0));
                hour.map(|h| h + Duration::HOUR).unwrap_or(now)
            }
        }
    }
}

/// An endpoint as a client describes it. `Debug` hides the security header.
#[derive(Clone, Default)]
pub struct EndpointFields {
    pub url: String,
    pub dialect: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub security_header: Option<String>,
    pub activation: Option<String>,
    pub ordered: Option<bool>,
    pub partner_app_id: Option<String>,
    pub retry_schedule: Option<Vec<u32>>,
    /// A vendor dialect also gets scheduled refreshes' messages.
    pub scheduled_refreshes: Option<bool>,
}

impl std::fmt::Debug for EndpointFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointFields")
            .field("url", &self.url)
            .field("dialect", &self.dialect)
            .field("event_types", &self.event_types)
            .field(
                "security_header",
                &freshet_model::secret::redact(&self.security_header),
            )
            .finish_non_exhaustive()
    }
}

/// Changes to an endpoint: absent fields stay, `null` clears. `Debug` hides the security
/// header.
#[derive(Clone, Default)]
pub struct EndpointPatch {
    pub url: Patch<String>,
    pub event_types: Patch<Vec<String>>,
    pub description: Patch<String>,
    pub security_header: Patch<String>,
    pub activation: Patch<String>,
    pub ordered: Patch<bool>,
    pub enabled: Patch<bool>,
    pub partner_app_id: Patch<String>,
    pub retry_schedule: Patch<Vec<u32>>,
    pub scheduled_refreshes: Patch<bool>,
}

impl std::fmt::Debug for EndpointPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header = match &self.security_header {
            Patch::Value(_) => "Value(<redacted>)",
            Patch::Null => "Null",
            Patch::Absent => "Absent",
        };
        f.debug_struct("EndpointPatch")
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("security_header", &format_args!("{header}"))
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// What can go wrong managing endpoints.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("invalid endpoint")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Vec<FieldError>> for EndpointError {
    fn from(e: Vec<FieldError>) -> Self {
        Self::Invalid(e)
    }
}

/// The endpoint rules of one node.
#[derive(Clone, Debug)]
pub struct Endpoints {
    store: Store,
    policy: Arc<TargetPolicy>,
}

impl Endpoints {
    pub fn new(store: Store, policy: Arc<TargetPolicy>) -> Self {
        Self { store, policy }
    }

    /// Creates an endpoint with a fresh signing secret.
    pub async fn create(
        &self,
        app: ApplicationId,
        f: EndpointFields,
    ) -> Result<WebhookEndpoint, EndpointError> {
        let mut v = Validation::new();
        let dialect = f.dialect.as_deref().unwrap_or("standard");
        let parsed = Dialect::parse(dialect);
        if parsed.is_none() {
            let names: Vec<_> = Dialect::ALL.iter().map(|d| d.name()).collect();
            v.add("dialect", format!("must be one of {}", names.join(", ")));
        }
        let now = freshet_model::time::now();
        let activation = match f.activation.as_deref().map(Activation::parse) {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                v.add("activation", e);
                Activation::Immediate
            }
            None if parsed == Some(Dialect::Tatra) => Activation::NextHour,
            None => Activation::Immediate,
        };
        let candidate = NewEndpoint {
            url: f.url.trim().to_string(),
            dialect: dialect.to_string(),
            event_types: self.check_types(&mut v, dialect, f.event_types.as_deref()),
            description: f
                .description
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
            ordered: f.ordered.unwrap_or(false),
            security_header: f.security_header,
            partner_app_id: f.partner_app_id,
            active_from: activation.start(now),
            secret: freshet_dialects::new_secret(),
            retry_schedule: f.retry_schedule,
            scheduled_refreshes: f.scheduled_refreshes.unwrap_or(false),
            activation: activation.as_str().to_string(),
        };
        self.check(
            &mut v,
            &candidate.url,
            &candidate.dialect,
            &candidate.description,
            &candidate.security_header,
            &candidate.partner_app_id,
            candidate.retry_schedule.as_deref(),
        );
        v.finish(|| ())?;
        Ok(self.store.insert_endpoint(app, &candidate).await?)
    }

    /// Applies a partial update, re-checking every rule against the result.
    pub async fn update(
        &self,
        app: ApplicationId,
        id: EndpointId,
        p: EndpointPatch,
    ) -> Result<Option<WebhookEndpoint>, EndpointError> {
        self.store
            .update_endpoint(app, id, |e| {
                let mut v = Validation::new();
                let now = freshet_model::time::now();
                if let Patch::Value(url) = p.url {
                    e.url = url.trim().to_string();
                } else if p.url == Patch::Null {
                    v.add("url", "is required");
                }
                match p.event_types {
                    Patch::Absent => {}
                    Patch::Null => e.event_types = None,
                    Patch::Value(types) => {
                        e.event_types = self.check_types(&mut v, &e.dialect, Some(&types))
                    }
                }
                e.description = p
                    .description
                    .apply(e.description.take())
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty());
                e.security_header = p.security_header.apply(e.security_header.take());
                e.partner_app_id = p.partner_app_id.apply(e.partner_app_id.take());
                e.retry_schedule = p.retry_schedule.apply(e.retry_schedule.take());
                if let Patch::Value(ordered) = p.ordered {
                    e.ordered = ordered;
                }
                if let Patch::Value(on) = p.scheduled_refreshes {
                    e.scheduled_refreshes = on;
                }
                match p.activation {
                    Patch::Value(a) => match Activation::parse(&a) {
                        Ok(a) => {
                            e.active_from = a.start(now);
                            e.activation = a.as_str().to_string();
                        }
                        Err(msg) => v.add("activation", msg),
                    },
                    Patch::Null | Patch::Absent => {}
                }
                if let Patch::Value(enabled) = p.enabled {
                    if enabled && !e.enabled {
                        // Re-enabling starts a fresh health record, and starts the endpoint
                        // as creating it did (Tatra banka: at the next full hour).
                        e.failing_since = None;
                        e.disabled_reason = None;
                        let activation =
                            Activation::parse(&e.activation).unwrap_or(Activation::Immediate);
                        e.active_from = e.active_from.max(activation.start(now));
                    }
                    if !enabled && e.enabled {
                        e.disabled_reason = Some("disabled by the application".into());
                    }
                    e.enabled = enabled;
                }
                self.check(
                    &mut v,
                    &e.url,
                    &e.dialect,
                    &e.description,
                    &e.security_header,
                    &e.partner_app_id,
                    e.retry_schedule.as_deref(),
                );
                v.finish(|| ()).map_err(EndpointError::Invalid)
            })
            .await
    }

    /// Replaces the signing secret; the old one keeps signing for `overlap`.
    pub async fn rotate_secret(
        &self,
        app: ApplicationId,
        id: EndpointId,
        overlap: Option<Duration>,
    ) -> Result<Option<WebhookEndpoint>, EndpointError> {
        let overlap = overlap.unwrap_or(DEFAULT_OVERLAP);
        if overlap < Duration::ZERO || overlap > MAX_OVERLAP {
            return Err(EndpointError::Invalid(vec![FieldError::new(
                "overlap_seconds",
                "must be between 0 and 604800 (7 days)",
            )]));
        }
        self.store
            .update_endpoint(app, id, |e| {
                e.previous_secret = Some(std::mem::replace(
                    &mut e.secret,
                    freshet_dialects::new_secret(),
                ));
                e.previous_secret_until = Some(freshet_model::time::now() + overlap);
                Ok::<_, EndpointError>(())
            })
            .await
    }

    fn check_types(
        &self,
        v: &mut Validation,
        dialect: &str,
        types: Option<&[String]>,
    ) -> Option<Vec<EventType>> {
        let types = types?;
        if types.is_empty() {
            v.add(
                "event_types",
                "must list at least one type, or be left out to receive every type",
            );
            return None;
        }
        let sent = Dialect::parse(dialect).map_or(&[][..], Dialect::event_types);
        let mut parsed = Vec::new();
        for (i, t) in types.iter().enumerate() {
            match EventType::parse(t) {
                None => v.add(
                    format!("event_types[{i}]"),
                    format!("`{t}` is not an event type"),
                ),
                Some(et) if !sent.contains(&et) && !sent.is_empty() => v.add(
                    format!("event_types[{i}]"),
                    format!(
                        "`{t}` is not sent by the {dialect} dialect, which sends {}",
                        sent.iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(et) => parsed.push(et),
            }
        }
        Some(parsed)
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        v: &mut Validation,
        url: &str,
        dialect: &str,
        description: &Option<String>,
        security_header: &Option<String>,
        partner_app_id: &Option<String>,
        retry_schedule: Option<&[u32]>,
    ) {
        let url_ok = match self.policy.check_url(url) {
            Err(Refusal::Address(ip, kind)) => {
                v.add(
                    "url",
                    format!(
                        "points at {ip}, a {kind} address, which this freshet does not deliver to"
                    ),
                );
                false
            }
            Err(r) => {
                v.add("url", r.to_string());
                false
            }
            Ok(_) => true,
        };
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            v.add(
                "description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            );
        }
        let header_ok = match security_header {
            Some(h) if h.len() > MAX_SECURITY_HEADER || h.chars().any(|c| c.is_control()) => {
                v.add(
                    "security_header",
                    format!("must be at most {MAX_SECURITY_HEADER} printable characters"),
                );
                false
            }
            _ => true,
        };
        // The dialect's own rules, on what passed the general ones (one complaint per fault).
        if let Some(d) = Dialect::parse(dialect)
            && let Err(broken) = d.check_endpoint(url, security_header.as_deref())
        {
            for e in broken {
                let general_ok = match e.field {
                    "url" => url_ok,
                    "security_header" => header_ok,
                    _ => true,
                };
                if general_ok {
                    v.add(e.field, e.message);
                }
            }
        }
        if partner_app_id
            .as_ref()
            .is_some_and(|p| p.is_empty() || p.len() > MAX_PARTNER_APP_ID)
        {
            v.add(
                "partner_app_id",
                format!("must be 1 to {MAX_PARTNER_APP_ID} characters"),
            );
        }
        if let Some(schedule) = retry_schedule
            && let Err(e) = validate_schedule(schedule)
        {
            v.add("retry_schedule", e);
        }
    }
}

impl Engine {
    /// How this node turns a claimed delivery into a signed request, signing Bud-dialect
    /// bodies with `keys`.
    pub fn prepare(&self, keys: Arc<SigningKeys>) -> crate::delivery::dispatcher::Prepare {
        Arc::new(move |claim, now| formats::prepare(claim, now, &keys.current()))
    }

    /// Records an event in `tx` for every subscribed endpoint of `app`; the caller commits, and
    /// then passes what this returns to [`Engine::dispatch`].
    pub async fn record(
        &self,
        tx: &mut Tx,
        app: ApplicationId,
        customer: Option<CustomerId>,
        data: EventData,
        event_type: EventType,
    ) -> Result<(StoredEvent, Ready), StoreError> {
        let (mut recorded, ready) = self
            .record_all(tx, app, customer, vec![(event_type, data)])
            .await?;
        Ok((recorded.remove(0), ready))
    }

    /// Records several events of one customer in `tx` with one write of each kind (event
    /// rows, delivery rows) rather than one per event. Deliveries that may leave at once are
    /// written leased to this node, so that after the commit they go straight to its
    /// dispatcher rather than waiting for a claim.
    pub async fn record_all(
        &self,
        tx: &mut Tx,
        app: ApplicationId,
        customer: Option<CustomerId>,
        events: Vec<(EventType, EventData)>,
    ) -> Result<(Vec<StoredEvent>, Ready), StoreError> {
        self.record_batch(tx, app, customer, events, None).await
    }

    /// Records the events of one refresh task, like [`Engine::record_all`]: on every endpoint
    /// they leave in the order recorded, each once the one before it settled (a receiver gets a
    /// refresh's stages in order, whatever the endpoint and however many nodes), and a vendor
    /// dialect gets those that answer a client's request only for the refreshes it reports
    /// ([`Dialect::reports_refresh`]) or when the endpoint takes scheduled refreshes.
    pub async fn record_refresh(
        &self,
        tx: &mut Tx,
        app: ApplicationId,
        customer: CustomerId,
        refresh: &RefreshOrigin,
        events: Vec<(EventType, EventData)>,
    ) -> Result<(Vec<StoredEvent>, Ready), StoreError> {
        self.record_batch(tx, app, Some(customer), events, Some(refresh))
            .await
    }

    async fn record_batch(
        &self,
        tx: &mut Tx,
        app: ApplicationId,
        customer: Option<CustomerId>,
        events: Vec<(EventType, EventData)>,
        refresh: Option<&RefreshOrigin>,
    ) -> Result<(Vec<StoredEvent>, Ready), StoreError> {
        let mut stored = Vec::with_capacity(events.len());
        for (t, data) in &events {
            let dialects = formats::dialects_sending(*t);
            let opted_in: Vec<&'static str> = match refresh {
                Some(r) => Dialect::ALL
                    .into_iter()
                    .filter(|d| d.sends(*t) && !d.reports_refresh(*t, r.trigger))
                    .map(Dialect::name)
                    .collect(),
                None => Vec::new(),
            };
            stored.push((new_event(app, customer, *t, data)?, dialects, opted_in));
        }
        let series = refresh.map(|r| r.task_id.as_str());
        let batch: Vec<(StoredEvent, Fanout<'_>)> = stored
            .iter()
            .map(|(e, dialects, opted_in)| {
                let fanout = Fanout::Subscribers {
                    dialects,
                    opted_in,
                    series,
                };
                (e.clone(), fanout)
            })
            .collect();
        let (ready, _) = record_leased(tx, &batch, self.handoff.as_ref()).await?;
        // Counted once written: the caller's commit comes next, and only a failing database
        // stops it.
        self.metrics()
            .events_recorded(stored.iter().map(|(e, ..)| e.event_type));
        Ok((stored.into_iter().map(|(e, ..)| e).collect(), ready))
    }

    /// Sends an `endpoint.test` event to one endpoint of `app`, whatever it subscribes to;
    /// `None` when `app` has no such endpoint.
    pub async fn send_test(
        &self,
        app: ApplicationId,
        endpoint: EndpointId,
        data: Option<Value>,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let payload = EventData::EndpointTest(EndpointTest {
            endpoint_id: endpoint.to_string(),
            data,
        });
        let event = new_event(app, None, EventType::EndpointTest, &payload)?;
        let stored = self
            .recorder
            .record(event.clone(), Target::Only(endpoint))
            .await?;
        Ok(stored.then_some(event))
    }

    /// Re-sends an endpoint's events in `[since, until)`; returns (re-queued, created).
    pub async fn replay(
        &self,
        endpoint: &WebhookEndpoint,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<(u64, u64), StoreError> {
        let dialect = Dialect::parse(&endpoint.dialect);
        let sent = dialect.map_or(&[][..], Dialect::event_types);
        let filter = endpoint.event_types.clone();
        // As when they were first recorded: a vendor dialect gets the refreshes it reports.
        let reported = |t: EventType, data: &Value| {
            let trigger = serde_json::from_value(data["trigger"].clone()).unwrap_or_default();
            endpoint.scheduled_refreshes || dialect.is_none_or(|d| d.reports_refresh(t, trigger))
        };
        let counts = self
            .store
            .replay_endpoint(
                endpoint.application_id,
                endpoint.id,
                since,
                until,
                |t, data| {
                    sent.contains(&t)
                        && filter.as_ref().is_none_or(|f| f.contains(&t))
                        && reported(t, data)
                },
            )
            .await?;
        self.wake_dispatcher();
        Ok(counts)
    }

    /// Disables an endpoint that has not had a success for too long, and says so in an event.
    pub async fn disable_failing(
        &self,
        app: ApplicationId,
        id: EndpointId,
        since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let reason = format!("no successful delivery since {since}");
        let mut disabled = None;
        self.store
            .update_endpoint::<StoreError>(app, id, |e| {
                if e.enabled {
                    e.enabled = false;
                    e.disabled_reason = Some(reason.clone());
                    disabled = Some((e.url.clone(), e.last_success_at));
                }
                Ok(())
            })
            .await?;
        if let Some((url, last_success_at)) = disabled {
            tracing::warn!(endpoint = %id, "endpoint disabled after failing too long");
            let data = EventData::EndpointDisabled(EndpointDisabled {
                endpoint_id: id.to_string(),
                url,
                reason,
                last_success_at,
            });
            let event = new_event(app, None, EventType::EndpointDisabled, &data)?;
            let dialects = formats::dialects_sending(EventType::EndpointDisabled);
            self.recorder
                .record(event, Target::Subscribers(dialects))
                .await?;
        }
        Ok(())
    }
}

fn new_event(
    app: ApplicationId,
    customer: Option<CustomerId>,
    event_type: EventType,
    data: &EventData,
) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: EventId::new(),
        application_id: app,
        event_type,
        customer_id: customer,
        created_at: freshet_model::time::now(),
        data: serde_json::to_value(data).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn next_hour_activation_is_the_next_full_hour() {
        let t = datetime!(2026-11-24 11:31:07.5 UTC);
        assert_eq!(
            Activation::NextHour.start(t),
            datetime!(2026-11-24 12:00 UTC)
        );
        assert_eq!(
            Activation::NextHour.start(datetime!(2026-11-24 23:59 UTC)),
            datetime!(2026-11-25 00:00 UTC)
        );
        assert_eq!(Activation::Immediate.start(t), t);
        assert!(Activation::parse("tomorrow").is_err());
    }
}
