//! Result codes of refresh tasks and sub-tasks.
//!
//! The set is Bud's Connect API errors (seed 000 reports `result` with these words), which
//! covers every way a bank call ends. Connectors map each standard's HTTP statuses and error
//! codes into it.

use serde::{Deserialize, Serialize};

/// How a refresh (or one bank's part of it) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultCode {
    Success,
    AuthDenied,
    AuthExpired,
    ConnectionExpired,
    ConnectionReauthenticate,
    ConnectionRevoked,
    ConsentNotFound,
    InternalError,
    InternalTimeout,
    ProviderUnavailable,
    ProviderFailure,
    ProviderMaintenance,
    ProviderRequestLimit,
    ProviderTimeout,
    ProviderNotFound,
}

impl ResultCode {
    /// Every code.
    pub const ALL: [Self; 15] = [
        Self::Success,
        Self::AuthDenied,
        Self::AuthExpired,
        Self::ConnectionExpired,
        Self::ConnectionReauthenticate,
        Self::ConnectionRevoked,
        Self::ConsentNotFound,
        Self::InternalError,
        Self::InternalTimeout,
        Self::ProviderUnavailable,
        Self::ProviderFailure,
        Self::ProviderMaintenance,
        Self::ProviderRequestLimit,
        Self::ProviderTimeout,
        Self::ProviderNotFound,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::AuthDenied => "auth_denied",
            Self::AuthExpired => "auth_expired",
            Self::ConnectionExpired => "connection_expired",
            Self::ConnectionReauthenticate => "connection_reauthenticate",
            Self::ConnectionRevoked => "connection_revoked",
            Self::ConsentNotFound => "consent_not_found",
            Self::InternalError => "internal_error",
            Self::InternalTimeout => "internal_timeout",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::ProviderFailure => "provider_failure",
            Self::ProviderMaintenance => "provider_maintenance",
            Self::ProviderRequestLimit => "provider_request_limit",
            Self::ProviderTimeout => "provider_timeout",
            Self::ProviderNotFound => "provider_not_found",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the customer must go through the bank's authentication again before this
    /// connection works (Bud's `reconnect_required`).
    pub fn requires_reconnect(self) -> bool {
        matches!(
            self,
            Self::AuthExpired
                | Self::ConnectionExpired
                | Self::ConnectionReauthenticate
                | Self::ConnectionRevoked
                | Self::ConsentNotFound
        )
    }

    /// Whether trying again later, unchanged, may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::InternalError
                | Self::InternalTimeout
                | Self::ProviderUnavailable
                | Self::ProviderFailure
                | Self::ProviderMaintenance
                | Self::ProviderRequestLimit
                | Self::ProviderTimeout
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for code in ResultCode::ALL {
            assert_eq!(ResultCode::parse(code.as_str()), Some(code));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
    }

    #[test]
    fn reconnect_and_transient_are_disjoint() {
        for code in ResultCode::ALL {
            assert!(
                !(code.requires_reconnect() && code.is_transient()),
                "{code:?}"
            );
        }
        assert!(!ResultCode::Success.requires_reconnect());
        assert!(!ResultCode::Success.is_transient());
    }
}
