//! Data products (Klavi's product requests): reports freshet builds from the accounts and
//! transactions it holds, each sent to a callback URL of the client's choosing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::{
    ApplicationId, CustomerId,
    refresh::{ConsentId, LinkId},
    webhooks::{DeliveryId, EndpointId},
};

crate::ids::id_type!(
    /// A request for data products.
    ProductRequestId
);

/// A product freshet knows how to build, by Klavi's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// A statement of each checking (current) account over the period.
    PfCheckingAccount,
    /// A summary of each credit card over the period.
    PfCreditCard,
}

impl ProductKind {
    pub const ALL: [Self; 2] = [Self::PfCheckingAccount, Self::PfCreditCard];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PfCheckingAccount => "pf_checking_account",
            Self::PfCreditCard => "pf_credit_card",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Where a request stands: waiting for (or under) generation, or every product settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Completed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Completed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// How one product of a request went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Pending,
    Succeeded,
    Failed,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A request for data products, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductRequest {
    pub id: ProductRequestId,
    pub application_id: ApplicationId,
    pub customer_id: CustomerId,
    pub link_id: LinkId,
    pub consent_ids: Vec<ConsentId>,
    pub products: Vec<ProductKind>,
    /// Product name → URL the product is POSTed to.
    pub callback_urls: BTreeMap<String, String>,
    /// Klavi's `taxId`: the one the request was made for, when the client named one.
    pub tax_id: Option<String>,
    /// The period the products cover, both days included.
    pub period_from: Date,
    pub period_to: Date,
    pub status: RequestStatus,
    /// Claims of the request by a generator; a request claimed too often is failed.
    pub attempts: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One product of a request.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductResult {
    pub product: ProductKind,
    pub callback_url: String,
    /// The hidden endpoint that delivers this product to its callback URL.
    pub endpoint_id: EndpointId,
    pub status: ProductStatus,
    pub failure_reason: Option<String>,
    /// The delivery of the product to its callback URL, once generated.
    pub delivery_id: Option<DeliveryId>,
    pub generated_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in ProductKind::ALL {
            assert_eq!(ProductKind::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(ProductKind::parse("pf_loans"), None);
        for s in [
            ProductStatus::Pending,
            ProductStatus::Succeeded,
            ProductStatus::Failed,
        ] {
            assert_eq!(ProductStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            RequestStatus::parse("completed"),
            Some(RequestStatus::Completed)
        );
    }
}
