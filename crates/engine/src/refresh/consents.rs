//! Links and consents: creating them at the bank, the customer's return, revocation.

use freshet_banks::{AuthContext, AuthReturn, ConsentRequest};
use freshet_model::{
    ApplicationId, ConsentStatus, CustomerId, EventType,
    events::{ConsentChanged, EventData, LinkCreated, Permission},
    refresh::{BankTokens, Consent, ConsentId, Link, LinkId, integer_id},
};

use super::{AuthorisationReturn, Callback, NewLink, RefreshError, Refresher, invalid, snapshots};

impl Refresher {
    /// Creates a link and its consent at the bank; the consent then awaits the customer at
    /// its authorisation URL.
    pub async fn create_link(
        &self,
        app: ApplicationId,
        customer_id: CustomerId,
        req: NewLink,
    ) -> Result<(Link, Consent), RefreshError> {
        let customer = self.customer(app, customer_id).await?;
        let (provider, connector) = self.bank(&req.provider_id).ok_or_else(|| {
            invalid(
                "provider_id",
                format!(
                    "unknown provider `{}`; GET /v1/providers lists them",
                    req.provider_id
                ),
            )
        })?;
        let now = freshet_model::time::now();
        if req.expires_at.is_some_and(|e| e <= now) {
            return Err(invalid("expires_at", "must be in the future"));
        }
        if provider.standard == freshet_banks::Standard::OpenFinanceBrasil
            && customer.personal_tax_id.is_none()
        {
            return Err(invalid(
                "provider_id",
                "Open Finance Brasil consents name the customer: set the customer's personal_tax_id (CPF) first",
            ));
        }
        let permissions = req
            .permissions
            .clone()
            .unwrap_or_else(|| vec![Permission::RegistrationAll, Permission::AccountsAll]);
        if permissions.is_empty() {
            return Err(invalid("permissions", "must name at least one permission"));
        }
        let redirect_uri = provider.redirect_uri(&self.inner.config.callback_url);
        let expires_at = req
            .expires_at
            .unwrap_or_else(|| now + time::Duration::days(self.inner.config.default_consent_days));
        let bank = connector
            .create_consent(&ConsentRequest {
                permissions: permissions.clone(),
                expires_at: Some(expires_at),
                history_from: now.date() - time::Duration::days(self.inner.config.history_days),
                customer_tax_id: customer.personal_tax_id.clone(),
                customer_ip: req.customer_ip.clone(),
                redirect_uri: Some(redirect_uri.clone()),
                notification_uri: self.notification_uri(provider),
            })
            .await
            .map_err(RefreshError::Bank)?;
        let state = secret();
        let authorisation = connector
            .authorisation(&bank, &redirect_uri, &state)
            .await
            .map_err(RefreshError::Bank)?;
        let context = (authorisation.context != AuthContext::default())
            .then(|| serde_json::to_string(&authorisation.context).expect("a context serialises"));
        let link_id = LinkId::new();
        let link = Link {
            id: link_id,
            application_id: app,
            customer_id,
            provider_id: provider.id.clone(),
            number: integer_id(link_id.0),
            external_track_id: req.external_track_id.clone(),
            created_at: now,
        };
        let consent = Consent {
            id: ConsentId::new(),
            application_id: app,
            customer_id,
            link_id,
            provider_id: provider.id.clone(),
            status: ConsentStatus::AwaitingAuthorisation,
            bank_consent_id: bank.bank_consent_id,
            permissions_requested: permissions,
            permissions_granted: Vec::new(),
            expires_at: bank.expires_at.or(Some(expires_at)),
            external_track_id: req.external_track_id,
            reconnect_required: false,
            authorisation_url: Some(authorisation.url),
            redirect_url: req.redirect_url,
            next_refresh_at: None,
            last_refreshed_at: None,
            authorised_at: None,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.begin().await?;
        tx.insert_link(&link).await?;
        tx.insert_consent(&consent, &state, context.as_deref())
            .await?;
        let data = EventData::LinkCreated(LinkCreated {
            customer: snapshots::customer(&customer),
            provider: snapshots::provider(provider),
            link: snapshots::link(&link),
        });
        self.record(&mut tx, app, customer_id, EventType::LinkCreated, data)
            .await?;
        tx.commit().await?;
        Ok((link, consent))
    }

    /// A `consent.*` event's payload.
    pub(super) async fn consent_event(
        &self,
        consent: &Consent,
        reason: Option<String>,
    ) -> Result<EventData, RefreshError> {
        let customer = self
            .customer(consent.application_id, consent.customer_id)
            .await?;
        let link = self
            .store()
            .link(consent.link_id)
            .await?
            .ok_or(RefreshError::NotFound("link"))?;
        let provider = self.bank(&consent.provider_id).map_or_else(
            || snapshots::unknown_provider(&consent.provider_id),
            |(p, _)| snapshots::provider(p),
        );
        Ok(EventData::Consent(ConsentChanged {
            customer: snapshots::customer(&customer),
            provider,
            link: snapshots::link(&link),
            consent: snapshots::consent(consent),
            reason,
        }))
    }

    /// Moves a consent and records the event saying so, in one transaction; false when the
    /// consent was not in a state it could move from.
    pub(super) async fn move_consent(
        &self,
        consent: &Consent,
        from: &[ConsentStatus],
        to: ConsentStatus,
        event: EventType,
        reason: Option<String>,
    ) -> Result<bool, RefreshError> {
        let moved = Consent {
            status: to,
            updated_at: freshet_model::time::now(),
            ..consent.clone()
        };
        let data = self.consent_event(&moved, reason).await?;
        let mut tx = self.begin().await?;
        if !tx.move_consent(consent.id, from, to).await? {
            return Ok(false);
        }
        self.record(
            &mut tx,
            consent.application_id,
            consent.customer_id,
            event,
            data,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The bank sent the customer back: check what it sent and exchange the code, or record
    /// the refusal.
    pub async fn complete_authorisation(
        &self,
        ret: AuthorisationReturn<'_>,
    ) -> Result<Callback, RefreshError> {
        let (consent, context) =
            self.store()
                .consent_by_state(ret.state)
                .await?
                .ok_or(RefreshError::NotFound(
                    "authorisation in progress for this state",
                ))?;
        if let Some(error) = ret.error {
            return match error {
                "access_denied" => {
                    self.refuse(
                        &consent,
                        ConsentStatus::Rejected,
                        EventType::ConsentRejected,
                        "the customer rejected the consent at the bank".into(),
                    )
                    .await
                }
                other => {
                    self.refuse(
                        &consent,
                        ConsentStatus::Error,
                        EventType::ConsentError,
                        format!("the bank answered the authorisation with `{other}`"),
                    )
                    .await
                }
            };
        }
        let Some(code) = ret.code else {
            return Err(invalid(
                "code",
                "the callback carries neither a code nor an error",
            ));
        };
        let (provider, connector) = self
            .bank(&consent.provider_id)
            .ok_or(RefreshError::NotFound("provider"))?;
        let context: AuthContext = context
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default();
        let redirect_uri = provider.redirect_uri(&self.inner.config.callback_url);
        let returned = AuthReturn {
            state: ret.state.to_string(),
            code: code.to_string(),
            id_token: ret.id_token.map(str::to_string),
        };
        let tokens = match connector
            .finish_authorisation(&returned, &context, &consent.bank_consent_id, &redirect_uri)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                return self
                    .refuse(
                        &consent,
                        ConsentStatus::Error,
                        EventType::ConsentError,
                        format!("completing the authorisation failed: {}", e.detail),
                    )
                    .await;
            }
        };
        let now = freshet_model::time::now();
        let (expires_at, granted) = self.granted(connector, &consent, &tokens, now).await;
        let authorised = Consent {
            status: ConsentStatus::Authorised,
            permissions_granted: granted,
            authorisation_url: None,
            expires_at,
            authorised_at: Some(now),
            updated_at: now,
            // The first import starts with the scheduler's next pass.
            next_refresh_at: Some(now),
            ..consent.clone()
        };
        let data = self.consent_event(&authorised, None).await?;
        let mut tx = self.begin().await?;
        let bank_tokens = BankTokens {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            expires_at: tokens.expires_at,
        };
        if !tx
            .authorise_consent(
                consent.id,
                &bank_tokens,
                &authorised.permissions_granted,
                now,
                expires_at,
            )
            .await?
        {
            return Err(invalid(
                "state",
                "this consent is no longer awaiting authorisation",
            ));
        }
        self.record(
            &mut tx,
            consent.application_id,
            consent.customer_id,
            EventType::ConsentAuthorised,
            data,
        )
        .await?;
        tx.commit().await?;
        Ok(Callback {
            consent: authorised,
            authorised: true,
            detail: None,
        })
    }

    /// The expiry and the permission groups the bank actually granted, read back once the
    /// customer authorised: banks shorten what was asked (Berlin Group's `validUntil`) and
    /// grant less (an Open Finance Brasil bank drops the products the customer does not hold).
    /// What was known before stands where the bank does not say: the expiry asked for, and the
    /// permissions requested.
    async fn granted(
        &self,
        connector: &freshet_banks::Connector,
        consent: &Consent,
        tokens: &freshet_banks::Tokens,
        now: time::OffsetDateTime,
    ) -> (Option<time::OffsetDateTime>, Vec<Permission>) {
        let session = freshet_banks::Session {
            bank_consent_id: &consent.bank_consent_id,
            access_token: &tokens.access_token,
            customer_ip: None,
            auth_date: Some(now),
        };
        match connector.consent_details(&session).await {
            Ok(details) => (
                details.expires_at.or(consent.expires_at),
                details
                    .permissions
                    .unwrap_or_else(|| consent.permissions_requested.clone()),
            ),
            Err(e) => {
                tracing::warn!(consent = %consent.id, error = %e, "the bank did not say what the consent grants");
                (consent.expires_at, consent.permissions_requested.clone())
            }
        }
    }

    /// A consent the customer or the bank did not authorise.
    async fn refuse(
        &self,
        consent: &Consent,
        status: ConsentStatus,
        event: EventType,
        detail: String,
    ) -> Result<Callback, RefreshError> {
        self.move_consent(
            consent,
            &[ConsentStatus::AwaitingAuthorisation],
            status,
            event,
            Some(detail.clone()),
        )
        .await?;
        let consent = self
            .store()
            .consent(consent.id)
            .await?
            .unwrap_or_else(|| consent.clone());
        Ok(Callback {
            consent,
            authorised: false,
            detail: Some(detail),
        })
    }

    /// Ends a consent: at the bank (best effort: the customer's wish stands even if the bank
    /// is down), then in freshet.
    pub async fn revoke(&self, app: ApplicationId, id: ConsentId) -> Result<Consent, RefreshError> {
        let consent = self
            .store()
            .get_consent(app, id)
            .await?
            .ok_or(RefreshError::NotFound("consent"))?;
        if consent.status.is_terminal() {
            return Ok(consent);
        }
        if let (Some((_, connector)), Some(tokens)) = (
            self.bank(&consent.provider_id),
            self.store().consent_tokens(id).await?,
        ) {
            let session = freshet_banks::Session {
                bank_consent_id: &consent.bank_consent_id,
                access_token: &tokens.access_token,
                customer_ip: None,
                auth_date: consent.authorised_at,
            };
            if let Err(e) = connector.revoke(&session).await {
                tracing::warn!(consent = %id, error = %e, "the bank did not confirm the revocation");
            }
        }
        self.move_consent(
            &consent,
            &[
                ConsentStatus::AwaitingAuthorisation,
                ConsentStatus::Authorised,
            ],
            ConsentStatus::Revoked,
            EventType::ConsentRevoked,
            Some("revoked by the client".into()),
        )
        .await?;
        Ok(self.store().get_consent(app, id).await?.unwrap_or(consent))
    }
}

/// An unguessable OAuth `state`.
fn secret() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
