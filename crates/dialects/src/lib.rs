//! Dialects: freshet's canonical events rendered in the wire formats its clients already speak.
//!
//! A client integrated with Bud, Tatra banka, Klavi or Yodlee should receive from freshet the
//! very bodies and headers that vendor sends, so its receiver works unchanged; a client with no
//! vendor gets freshet's own `standard` envelope. Each dialect is a pure function from a stored
//! [`Event`] (whose payload carries every snapshot any dialect needs) and a delivery
//! [`Context`] to a [`Rendered`] body and its vendor headers. No I/O, no clock, no store: the
//! engine supplies the time and keys, and adds the Standard Webhooks headers over
//! [`Rendered::body`] for every dialect.
//!
//! DESIGN.md section 3 is the contract; `docs/dialects/` describes each mapping, one page per
//! dialect, and `schemas/` holds a JSON Schema for each message a dialect sends.

#![forbid(unsafe_code)]

use freshet_model::{
    EventType,
    events::{Event, RefreshTrigger},
};
use time::OffsetDateTime;

pub mod bud;
mod endpoint;
pub mod klavi;
pub mod standard;
pub mod tatra;
mod test_event;
mod wire;
pub mod yodlee;

pub use bud::{BudSigningKey, BudVerifyError, KeyError, jwks, verify_bud};
pub use endpoint::EndpointRuleError;
pub use standard::{VerifyError, new_secret, standard_signature, verify_standard};
pub use test_event::render_test;

/// A wire format an endpoint receives events in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// freshet's own: `{type, timestamp, data}`, every event type.
    Standard,
    /// Bud Connect (seed 000).
    Bud,
    /// Tatra banka Premium API (seed 001).
    Tatra,
    /// Klavi API events (seed 002).
    Klavi,
    /// Yodlee REFRESH notifications (seed 003).
    Yodlee,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Self; 5] = [
        Self::Standard,
        Self::Bud,
        Self::Tatra,
        Self::Klavi,
        Self::Yodlee,
    ];

    /// Parses the name an endpoint is configured with.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The name an endpoint is configured with.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Bud => "bud",
            Self::Tatra => "tatra",
            Self::Klavi => "klavi",
            Self::Yodlee => "yodlee",
        }
    }

    /// The canonical event types this dialect sends (DESIGN.md section 3); rendering any other
    /// type is refused with [`RenderError::NotSent`].
    pub fn event_types(self) -> &'static [EventType] {
        match self {
            Self::Standard => &EventType::ALL,
            Self::Bud => bud::EVENT_TYPES,
            Self::Tatra => tatra::EVENT_TYPES,
            Self::Klavi => klavi::EVENT_TYPES,
            Self::Yodlee => yodlee::EVENT_TYPES,
        }
    }

    /// Whether this dialect sends events of type `t`.
    pub fn sends(self, t: EventType) -> bool {
        self.event_types().contains(&t)
    }

    /// Whether an endpoint of this dialect that has not opted in to scheduled refreshes gets
    /// an event of type `t` recorded by a refresh started by `trigger`. Bud's
    /// `refresh.completed`, Tatra banka's accountEvent and Yodlee's REFRESH notifications
    /// answer a refresh the client asked for (Initiate Refresh, `PUT /refresh`, the update
    /// account call), and Yodlee's also the first import of an account the user added; a
    /// receiver that maps them to its own requests breaks on tasks it never started.
    /// Everything else is sent whatever started the refresh.
    pub fn reports_refresh(self, t: EventType, trigger: RefreshTrigger) -> bool {
        use EventType as T;
        let answers_requests = matches!(
            (self, t),
            (Self::Bud, T::RefreshCompleted)
                | (Self::Tatra, T::AccountsUpdated)
                | (
                    Self::Yodlee,
                    T::RefreshProgress | T::RefreshProviderCompleted
                )
        );
        match trigger {
            _ if !answers_requests => true,
            RefreshTrigger::Manual => true,
            RefreshTrigger::FirstImport => self == Self::Yodlee,
            // Neither asked for by the client: reported only to endpoints that opt in.
            RefreshTrigger::Scheduled | RefreshTrigger::BankNotification => false,
        }
    }

    /// The dialect's own rules for an endpoint's URL and security header (Tatra banka: no query
    /// parameters, a header matching `^[ a-zA-Z0-9=+/]*$`). Every broken rule is listed, each
    /// naming its field; the engine's general checks (address policy, lengths) come on top.
    pub fn check_endpoint(
        self,
        url: &str,
        security_header: Option<&str>,
    ) -> Result<(), Vec<EndpointRuleError>> {
        match self {
            Self::Tatra => endpoint::check_tatra(url, security_header),
            Self::Standard | Self::Bud | Self::Klavi | Self::Yodlee => Ok(()),
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one delivery knows beyond the event: who sends it, when, with which keys.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Stable for this (event, endpoint) across retries: the Standard Webhooks `webhook-id`,
    /// Yodlee's `notificationId`, the `jti` of Bud's signature.
    pub webhook_id: &'a str,
    /// When this attempt is sent (Klavi's timestamp header, the `iat` of Bud's signature).
    pub sent_at: OffsetDateTime,
    /// The endpoint's security header, sent verbatim as `Authorization` when not empty.
    pub security_header: Option<&'a str>,
    /// Klavi's `partnerAppId` (the endpoint's, else the application's id).
    pub partner_app_id: Option<&'a str>,
    /// The key Bud-dialect bodies are signed with.
    pub bud_key: Option<&'a BudSigningKey>,
    /// The secret of Klavi's `X-Klavi-Signature`.
    pub klavi_secret: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// A context with no security header, partner app id or keys.
    pub fn new(webhook_id: &'a str, sent_at: OffsetDateTime) -> Self {
        Self {
            webhook_id,
            sent_at,
            security_header: None,
            partner_app_id: None,
            bud_key: None,
            klavi_secret: None,
        }
    }
}

/// A rendered delivery: the exact bytes to POST (and to sign with Standard Webhooks) and the
/// dialect's own headers, names in lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Rendered {
    /// The value of header `name` (lower case), if rendered.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an event could not be rendered. None of these goes away on a retry.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the {dialect} dialect does not send {} events", event_type.as_str())]
    NotSent {
        dialect: Dialect,
        event_type: EventType,
    },
    #[error("the payload of this {} event is not of that type", .0.as_str())]
    PayloadMismatch(EventType),
    #[error("the {dialect} dialect needs {what}")]
    Missing {
        dialect: Dialect,
        what: &'static str,
    },
    #[error("a time cannot be written in the {0} dialect's format")]
    Time(Dialect),
    #[error("the body could not be serialised: {0}")]
    Json(#[from] serde_json::Error),
}

/// Renders `event` in `dialect` for one delivery.
pub fn render(dialect: Dialect, event: &Event, ctx: &Context) -> Result<Rendered, RenderError> {
    if !dialect.sends(event.event_type) {
        return Err(RenderError::NotSent {
            dialect,
            event_type: event.event_type,
        });
    }
    let mut rendered = match dialect {
        Dialect::Standard => standard::render(event)?,
        Dialect::Bud => bud::render(event, ctx)?,
        Dialect::Tatra => tatra::render(event)?,
        Dialect::Klavi => klavi::render(event, ctx)?,
        Dialect::Yodlee => yodlee::render(event, ctx)?,
    };
    rendered
        .headers
        .insert(0, ("content-type", "application/json".to_string()));
    // Tatra banka requires it; any other endpoint may use it too (e.g. for basic auth).
    if let Some(auth) = ctx.security_header.filter(|h| !h.is_empty()) {
        rendered.headers.push(("authorization", auth.to_string()));
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for d in Dialect::ALL {
            assert_eq!(Dialect::parse(d.name()), Some(d));
            assert_eq!(d.to_string(), d.name());
        }
        assert_eq!(Dialect::parse("Bud"), None);
        assert_eq!(Dialect::parse("plaid"), None);
    }

    /// DESIGN.md section 3, dialect by dialect.
    #[test]
    fn each_dialect_sends_the_designed_types() {
        use EventType as T;
        let names = |d: Dialect| {
            let mut v: Vec<_> = d.event_types().iter().map(|t| t.as_str()).collect();
            v.sort();
            v
        };
        assert_eq!(Dialect::Standard.event_types(), &EventType::ALL);
        assert_eq!(
            names(Dialect::Bud),
            ["consent.revoked", "refresh.completed"]
        );
        assert_eq!(
            names(Dialect::Tatra),
            ["accounts.updated", "transactions.new"]
        );
        assert_eq!(
            names(Dialect::Yodlee),
            ["refresh.progress", "refresh.provider.completed"]
        );
        assert_eq!(
            names(Dialect::Klavi),
            [
                "consent.authorised",
                "consent.deleted_by_user",
                "consent.error",
                "consent.expired",
                "consent.rejected",
                "consent.revoked",
                "link.created",
                "product.generated_failed",
                "product.generated_success",
                "product.request_received",
            ]
        );
        // Not one vendor sends these: they are freshet's own.
        for t in [
            T::ConsentExpiring,
            T::EndpointTest,
            T::EndpointDisabled,
            T::CustomerErased,
        ] {
            let vendors = Dialect::ALL.into_iter().filter(|d| d.sends(t));
            assert_eq!(vendors.collect::<Vec<_>>(), [Dialect::Standard], "{t:?}");
        }
    }

    #[test]
    fn vendors_report_the_refreshes_a_client_asked_for() {
        use EventType as T;
        use RefreshTrigger as R;
        for d in Dialect::ALL {
            for t in d.event_types() {
                assert!(d.reports_refresh(*t, R::Manual), "{d} {t:?}");
            }
        }
        assert!(Dialect::Standard.reports_refresh(T::RefreshCompleted, R::Scheduled));
        assert!(!Dialect::Bud.reports_refresh(T::RefreshCompleted, R::Scheduled));
        assert!(!Dialect::Bud.reports_refresh(T::RefreshCompleted, R::FirstImport));
        assert!(!Dialect::Tatra.reports_refresh(T::AccountsUpdated, R::FirstImport));
        assert!(Dialect::Tatra.reports_refresh(T::TransactionsNew, R::Scheduled));
        assert!(Dialect::Tatra.reports_refresh(T::TransactionsNew, R::BankNotification));
        assert!(!Dialect::Tatra.reports_refresh(T::AccountsUpdated, R::BankNotification));
        assert!(Dialect::Yodlee.reports_refresh(T::RefreshProgress, R::FirstImport));
        assert!(!Dialect::Yodlee.reports_refresh(T::RefreshProviderCompleted, R::Scheduled));
    }

    #[test]
    fn only_tatra_has_endpoint_rules() {
        for d in [
            Dialect::Standard,
            Dialect::Bud,
            Dialect::Klavi,
            Dialect::Yodlee,
        ] {
            assert_eq!(
                d.check_endpoint("https://x.test/hook?a=1", Some("Bearer x.y-z")),
                Ok(())
            );
        }
        assert!(
            Dialect::Tatra
                .check_endpoint("https://x.test/hook?a=1", None)
                .is_err()
        );
    }
}
