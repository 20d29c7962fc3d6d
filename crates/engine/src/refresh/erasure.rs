//! Erasure of a customer at the client's request (`DELETE /v1/customers/{id}`).
//!
//! First the banks: each consent that still lets freshet in is revoked there, concurrently and
//! best effort — as [`Refresher::revoke`] does, the customer's wish stands if a bank is down,
//! and the answer counts the revocations that failed. Then freshet itself, in one transaction
//! ([`freshet_store::Tx::erase_customer`]): the customer's rows go, stored event payloads lose
//! their personal fields, pending deliveries are cancelled, and `customer.erased` is recorded.
//! Last, the call waits until no delivery claimed before the erasure can still leave (see
//! docs/operations.md, "Erasure"), so that once it answers nothing about the person leaves
//! freshet again.

use freshet_model::{
    ApplicationId, ConsentStatus, CustomerId, EventType,
    erasure::{CustomerErased, ErasedCounts},
    events::EventData,
    refresh::Consent,
};

use super::{RefreshError, Refresher};

impl Refresher {
    /// Erases customer `id` of `app` and everything freshet holds about them; answers what
    /// was removed.
    pub async fn erase_customer(
        &self,
        app: ApplicationId,
        id: CustomerId,
    ) -> Result<ErasedCounts, RefreshError> {
        self.customer(app, id).await?;
        let consents = self.store().customer_consents(app, id).await?;
        let revocations = consents.iter().map(|c| self.revoke_at_bank(c));
        let outcomes = futures::future::join_all(revocations).await;

        let mut tx = self.begin().await?;
        let erased = tx
            .erase_customer(app, id)
            .await?
            .ok_or(RefreshError::NotFound("customer"))?;
        let mut counts = erased.counts.clone();
        counts.consents_revoked_at_bank =
            outcomes.iter().filter(|o| **o == Some(true)).count() as u64;
        counts.bank_revocations_failed =
            outcomes.iter().filter(|o| **o == Some(false)).count() as u64;
        let data = EventData::CustomerErased(CustomerErased {
            customer_id: id.to_string(),
            removed: counts.clone(),
        });
        self.record(&mut tx, app, id, EventType::CustomerErased, data)
            .await?;
        tx.commit().await?;
        tracing::info!(customer = %id, events = counts.events_scrubbed,
            cancelled = counts.deliveries_cancelled, "customer erased");
        if erased.in_flight() {
            self.store()
                .await_erased_in_flight(app, id, &erased)
                .await?;
        }
        Ok(counts)
    }

    /// Revokes `consent` at its bank: `None` when there is nothing to revoke there (it already
    /// ended, was never authorised, or its bank is no longer configured), else whether the bank
    /// confirmed.
    async fn revoke_at_bank(&self, consent: &Consent) -> Option<bool> {
        if consent.status != ConsentStatus::Authorised {
            return None;
        }
        let (_, connector) = self.bank(&consent.provider_id)?;
        let tokens = match self.store().consent_tokens(consent.id).await {
            Ok(t) => t?,
            Err(e) => {
                tracing::warn!(consent = %consent.id, error = %e, "could not read the consent's tokens to revoke it");
                return Some(false);
            }
        };
        let session = freshet_banks::Session {
            bank_consent_id: &consent.bank_consent_id,
            access_token: &tokens.access_token,
            customer_ip: None,
            auth_date: consent.authorised_at,
        };
        match connector.revoke(&session).await {
            Ok(_) => Some(true),
            Err(e) => {
                tracing::warn!(consent = %consent.id, error = %e, "the bank did not confirm the revocation of an erased customer's consent");
                Some(false)
            }
        }
    }
}
