//! Consent states.
//!
//! Each bank standard has its own status vocabulary (OBIE `Authorised`, Berlin Group `valid`,
//! Brasil `AUTHORISED`…); connectors map theirs into this one so nothing above them ever sees
//! a bank's words.

use serde::{Deserialize, Serialize};

/// Where a consent stands in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    AwaitingAuthorisation,
    Authorised,
    Rejected,
    Revoked,
    Expired,
    Error,
    DeletedByUser,
}

impl ConsentStatus {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingAuthorisation => "awaiting_authorisation",
            Self::Authorised => "authorised",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Error => "error",
            Self::DeletedByUser => "deleted_by_user",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Every status, in lifecycle order.
    pub const ALL: [Self; 7] = [
        Self::AwaitingAuthorisation,
        Self::Authorised,
        Self::Rejected,
        Self::Revoked,
        Self::Expired,
        Self::Error,
        Self::DeletedByUser,
    ];

    /// A terminal consent never becomes usable again; a new consent is needed.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::AwaitingAuthorisation | Self::Authorised)
    }

    /// Whether moving from `self` to `next` is a legal step of the lifecycle.
    pub fn can_become(self, next: Self) -> bool {
        use ConsentStatus::*;
        matches!(
            (self, next),
            (
                AwaitingAuthorisation,
                Authorised | Rejected | Error | Expired
            ) | (Authorised, Revoked | Expired | Error | DeletedByUser)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ConsentStatus::ALL {
            assert_eq!(ConsentStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, serde_json::Value::String(s.as_str().into()));
        }
        assert_eq!(ConsentStatus::parse("valid"), None);
    }

    #[test]
    fn terminal_states_go_nowhere() {
        for from in ConsentStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ConsentStatus::ALL {
                assert!(!from.can_become(to), "{from:?} -> {to:?}");
            }
        }
        assert!(ConsentStatus::AwaitingAuthorisation.can_become(ConsentStatus::Authorised));
        assert!(ConsentStatus::Authorised.can_become(ConsentStatus::Revoked));
        assert!(!ConsentStatus::Authorised.can_become(ConsentStatus::Rejected));
    }
}
