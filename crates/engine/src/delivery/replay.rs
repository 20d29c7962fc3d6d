//! Deliveries a client asks for: a test event to one endpoint, and a replay of an endpoint's
//! past events.

use freshet_dialects::Dialect;
use freshet_model::{
    ApplicationId, EventType,
    events::{EndpointTest, EventData},
    webhooks::{EndpointId, WebhookEndpoint},
};
use freshet_store::{StoreError, StoredEvent};
use serde_json::Value;
use time::OffsetDateTime;

use super::{record::Target, transaction::new_event};
use crate::Engine;

impl Engine {
    /// Sends an `endpoint.test` event to one endpoint of `app`, whatever it subscribes to;
    /// `None` when `app` has no such endpoint.
    pub async fn send_test(
        &self,
        app: ApplicationId,
        endpoint: EndpointId,
        data: Option<Value>,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let payload = EventData::EndpointTest(EndpointTest {
            endpoint_id: endpoint.to_string(),
            data,
        });
        let event = new_event(app, None, EventType::EndpointTest, &payload)?;
        let stored = self
            .outbox
            .recorder
            .record(event.clone(), Target::Only(endpoint))
            .await?;
        Ok(stored.then_some(event))
    }

    /// Re-sends an endpoint's events in `[since, until)`; returns (re-queued, created).
    pub async fn replay(
        &self,
        endpoint: &WebhookEndpoint,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<(u64, u64), StoreError> {
        let dialect = Dialect::parse(&endpoint.dialect);
        let sent = dialect.map_or(&[][..], Dialect::event_types);
        let filter = endpoint.event_types.clone();
        // As when they were first recorded: a vendor dialect gets the refreshes it reports.
        let reported = |t: EventType, data: &Value| {
            let trigger = serde_json::from_value(data["trigger"].clone()).unwrap_or_default();
            endpoint.scheduled_refreshes || dialect.is_none_or(|d| d.reports_refresh(t, trigger))
        };
        let counts = self
            .store
            .replay_endpoint(
                endpoint.application_id,
                endpoint.id,
                since,
                until,
                |t, data| {
                    sent.contains(&t)
                        && filter.as_ref().is_none_or(|f| f.contains(&t))
                        && reported(t, data)
                },
            )
            .await?;
        self.wake_dispatcher_for(endpoint.id).await;
        Ok(counts)
    }
}
