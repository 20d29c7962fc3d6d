//! What the dispatcher does with an endpoint that has not had a success for too long: disable
//! it, once, and say so in an `endpoint.disabled` event.

use freshet_model::{
    ApplicationId, EventType,
    events::{EndpointDisabled, EventData},
    webhooks::EndpointId,
};
use freshet_store::StoreError;
use time::OffsetDateTime;

use super::{record::Target, render, transaction::new_event};
use crate::Engine;

impl Engine {
    /// Disables an endpoint that has not had a success since `since`, and says so in an event.
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
            let dialects = render::dialects_sending(EventType::EndpointDisabled);
            self.outbox
                .recorder
                .record(event, Target::Subscribers(dialects))
                .await?;
        }
        Ok(())
    }
}
