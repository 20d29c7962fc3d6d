//! Webhook endpoints, deliveries and attempts: the delivery engine's records.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{ApplicationId, EventType};

macro_rules! ids {
    ($($(#[$m:meta])* $name:ident),*) => {
        $(crate::ids::id_type!($(#[$m])* $name);)*
    };
}
ids!(
    /// A webhook endpoint.
    EndpointId,
    /// An event in the log.
    EventId,
    /// One event's delivery to one endpoint.
    DeliveryId,
    /// One HTTP attempt of a delivery.
    AttemptId
);

/// A client's webhook receiver.
#[derive(Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: EndpointId,
    pub application_id: ApplicationId,
    pub url: String,
    /// The wire format, by name (`standard`, `bud`, `tatra`, `klavi`, `yodlee`).
    pub dialect: String,
    /// The types sent; `None` sends every type the dialect renders.
    pub event_types: Option<Vec<EventType>>,
    pub description: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// One customer's deliveries leave in event order.
    pub ordered: bool,
    /// Sent verbatim as `Authorization` (Tatra banka's security header).
    pub security_header: Option<String>,
    /// Klavi's `partnerAppId`; the application id when unset.
    pub partner_app_id: Option<String>,
    /// Events before this instant are not sent (Tatra banka activates at the next full hour).
    pub active_from: OffsetDateTime,
    /// The signing secret, `whsec_…`.
    pub secret: String,
    /// The secret before the last rotation, still signed with until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<OffsetDateTime>,
    /// Delays in seconds before each retry; `None` uses the default schedule.
    pub retry_schedule: Option<Vec<u32>>,
    /// A vendor dialect also reports scheduled refreshes (it reports those a client asked for).
    pub scheduled_refreshes: bool,
    /// How the endpoint starts, and starts again when re-enabled: `immediate` or `next_hour`.
    pub activation: String,
    /// Deliveries per second at most, across all nodes; more wait in the outbox.
    pub rate_limit: Option<u32>,
    /// Deliveries awaiting the receiver's answer at once at most, across all nodes.
    pub max_in_flight: Option<u32>,
    pub last_success_at: Option<OffsetDateTime>,
    /// Start of the current run of failures, if failing.
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Shows everything but the secrets and the security header.
impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::secret::{REDACTED, redact};
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("application_id", &self.application_id)
            .field("url", &self.url)
            .field("dialect", &self.dialect)
            .field("event_types", &self.event_types)
            .field("description", &self.description)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .field("ordered", &self.ordered)
            .field("security_header", &redact(&self.security_header))
            .field("partner_app_id", &self.partner_app_id)
            .field("active_from", &self.active_from)
            .field("secret", &REDACTED)
            .field("previous_secret", &redact(&self.previous_secret))
            .field("previous_secret_until", &self.previous_secret_until)
            .field("retry_schedule", &self.retry_schedule)
            .field("scheduled_refreshes", &self.scheduled_refreshes)
            .field("activation", &self.activation)
            .field("rate_limit", &self.rate_limit)
            .field("max_in_flight", &self.max_in_flight)
            .field("last_success_at", &self.last_success_at)
            .field("failing_since", &self.failing_since)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

impl WebhookEndpoint {
    /// Whether the endpoint has a rate or concurrency limit, which the node holding its
    /// partition enforces.
    pub fn limited(&self) -> bool {
        self.rate_limit.is_some() || self.max_in_flight.is_some()
    }

    /// The secrets to sign with at `now`: the current one, plus the previous during its overlap.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now < until
        {
            secrets.push(prev);
        }
        secrets
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// Leased by a dispatcher, being sent.
    Delivering,
    /// The last attempt failed; another is scheduled.
    Failed,
    Succeeded,
    /// Every attempt failed; no more are scheduled.
    Dead,
    /// Never to be sent: its customer was erased before it could be (see docs/operations.md,
    /// "Erasure").
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Delivering,
        Self::Failed,
        Self::Succeeded,
        Self::Dead,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Failed => "failed",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One event's delivery to one endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub application_id: ApplicationId,
    pub event_id: EventId,
    pub endpoint_id: EndpointId,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: OffsetDateTime,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One HTTP attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub attempted_at: OffsetDateTime,
    /// `None` when no response arrived (timeout, refused connection, blocked target).
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The start of the response body, for debugging a receiver.
    pub response_excerpt: Option<String>,
    /// The node that made the attempt.
    pub node: String,
}

#[cfg(test)]
mod tests {
    use time::{Duration, macros::datetime};

    use super::*;

    #[test]
    fn previous_secret_signs_only_during_its_overlap() {
        let now = datetime!(2026-11-24 12:00 UTC);
        let mut e = WebhookEndpoint {
            id: EndpointId::new(),
            application_id: ApplicationId::new(),
            url: "http://127.0.0.1/x".into(),
            dialect: "standard".into(),
            event_types: None,
            description: None,
            enabled: true,
            disabled_reason: None,
            ordered: false,
            security_header: None,
            partner_app_id: None,
            active_from: now,
            secret: "new".into(),
            previous_secret: Some("old".into()),
            previous_secret_until: Some(now + Duration::hours(1)),
            retry_schedule: None,
            scheduled_refreshes: false,
            rate_limit: None,
            max_in_flight: None,
            activation: "immediate".into(),
            last_success_at: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        assert_eq!(e.signing_secrets(now), ["new", "old"]);
        assert_eq!(e.signing_secrets(now + Duration::hours(2)), ["new"]);
        e.previous_secret = None;
        assert_eq!(e.signing_secrets(now), ["new"]);
    }

    #[test]
    fn statuses_round_trip() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
    }
}
