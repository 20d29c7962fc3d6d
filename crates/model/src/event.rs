//! Canonical event types (DESIGN.md section 2).
//!
//! Every state change freshet makes is recorded as one of these, in the same transaction as the
//! change; dialects translate them into each vendor's wire format.

use serde::{Deserialize, Serialize};

/// The kind of a canonical event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "link.created")]
    LinkCreated,
    #[serde(rename = "consent.authorised")]
    ConsentAuthorised,
    #[serde(rename = "consent.rejected")]
    ConsentRejected,
    #[serde(rename = "consent.error")]
    ConsentError,
    #[serde(rename = "consent.expired")]
    ConsentExpired,
    #[serde(rename = "consent.revoked")]
    ConsentRevoked,
    #[serde(rename = "consent.deleted_by_user")]
    ConsentDeletedByUser,
    #[serde(rename = "consent.expiring")]
    ConsentExpiring,
    #[serde(rename = "refresh.progress")]
    RefreshProgress,
    #[serde(rename = "refresh.provider.completed")]
    RefreshProviderCompleted,
    #[serde(rename = "refresh.completed")]
    RefreshCompleted,
    #[serde(rename = "transactions.new")]
    TransactionsNew,
    #[serde(rename = "accounts.updated")]
    AccountsUpdated,
    #[serde(rename = "product.request_received")]
    ProductRequestReceived,
    #[serde(rename = "product.generated_success")]
    ProductGeneratedSuccess,
    #[serde(rename = "product.generated_failed")]
    ProductGeneratedFailed,
    #[serde(rename = "endpoint.test")]
    EndpointTest,
    #[serde(rename = "endpoint.disabled")]
    EndpointDisabled,
    #[serde(rename = "customer.erased")]
    CustomerErased,
}

impl EventType {
    /// Every event type.
    pub const ALL: [Self; 19] = [
        Self::LinkCreated,
        Self::ConsentAuthorised,
        Self::ConsentRejected,
        Self::ConsentError,
        Self::ConsentExpired,
        Self::ConsentRevoked,
        Self::ConsentDeletedByUser,
        Self::ConsentExpiring,
        Self::RefreshProgress,
        Self::RefreshProviderCompleted,
        Self::RefreshCompleted,
        Self::TransactionsNew,
        Self::AccountsUpdated,
        Self::ProductRequestReceived,
        Self::ProductGeneratedSuccess,
        Self::ProductGeneratedFailed,
        Self::EndpointTest,
        Self::EndpointDisabled,
        Self::CustomerErased,
    ];

    /// The dotted name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkCreated => "link.created",
            Self::ConsentAuthorised => "consent.authorised",
            Self::ConsentRejected => "consent.rejected",
            Self::ConsentError => "consent.error",
            Self::ConsentExpired => "consent.expired",
            Self::ConsentRevoked => "consent.revoked",
            Self::ConsentDeletedByUser => "consent.deleted_by_user",
            Self::ConsentExpiring => "consent.expiring",
            Self::RefreshProgress => "refresh.progress",
            Self::RefreshProviderCompleted => "refresh.provider.completed",
            Self::RefreshCompleted => "refresh.completed",
            Self::TransactionsNew => "transactions.new",
            Self::AccountsUpdated => "accounts.updated",
            Self::ProductRequestReceived => "product.request_received",
            Self::ProductGeneratedSuccess => "product.generated_success",
            Self::ProductGeneratedFailed => "product.generated_failed",
            Self::EndpointTest => "endpoint.test",
            Self::EndpointDisabled => "endpoint.disabled",
            Self::CustomerErased => "customer.erased",
        }
    }

    /// Parses the dotted name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::Value::String(t.as_str().into())
            );
        }
    }
}
