//! Webhook endpoints: the rules for creating and changing them, and rotating their secrets.
//! What is sent to them (recording events, test events, replays, disabling an endpoint that
//! fails too long) is in `delivery/`.
//!
//! The API calls these and maps the results; every rule about what an endpoint may be lives
//! here or, for a dialect's own rules (Tatra banka: no query parameters, a restricted security
//! header), in `Dialect::check_endpoint`; Tatra's activation at the next full hour is here.

use std::sync::Arc;

use freshet_dialects::Dialect;
use freshet_model::{
    ApplicationId, EventType, FieldError, Patch, Validation,
    webhooks::{EndpointId, WebhookEndpoint},
};
use freshet_store::{NewEndpoint, Store, StoreError};
use time::{Duration, OffsetDateTime};

use crate::delivery::{
    retry::validate_schedule,
    target::{Refusal, TargetPolicy},
};

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
    pub rate_limit: Option<i64>,
    pub max_in_flight: Option<i64>,
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
    pub rate_limit: Patch<i64>,
    pub max_in_flight: Patch<i64>,
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
            rate_limit: check_limit(&mut v, "rate_limit", f.rate_limit),
            max_in_flight: check_limit(&mut v, "max_in_flight", f.max_in_flight),
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
                match p.rate_limit {
                    Patch::Absent => {}
                    Patch::Null => e.rate_limit = None,
                    Patch::Value(n) => e.rate_limit = check_limit(&mut v, "rate_limit", Some(n)),
                }
                match p.max_in_flight {
                    Patch::Absent => {}
                    Patch::Null => e.max_in_flight = None,
                    Patch::Value(n) => {
                        e.max_in_flight = check_limit(&mut v, "max_in_flight", Some(n))
                    }
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

/// The most a limit may be: far above what one receiver takes, low enough that the limiter's
/// window of recent sends stays small.
pub const MAX_LIMIT: i64 = 100_000;

/// A per-endpoint limit as given: a whole number from 1 to [`MAX_LIMIT`], or none.
fn check_limit(v: &mut Validation, field: &str, given: Option<i64>) -> Option<u32> {
    let n = given?;
    if !(1..=MAX_LIMIT).contains(&n) {
        v.add(
            field,
            format!("must be a whole number from 1 to {MAX_LIMIT}"),
        );
        return None;
    }
    Some(n as u32)
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
