//! Recording events in a caller's transaction, so they are stored if and only if the change
//! they report is.
//!
//! [`Engine::begin`] opens an [`OutboxTx`]: a store transaction (it derefs to [`Tx`]) that
//! remembers what its events leased to this node. Its [`OutboxTx::commit`] commits and hands
//! those deliveries to the dispatcher in one step, so no caller can commit and forget the
//! hand-off (which would leave them waiting for their lease to expire). Dropped uncommitted,
//! it rolls back and nothing is handed over.

use std::ops::{Deref, DerefMut};

use freshet_dialects::Dialect;
use freshet_model::{
    ApplicationId, CustomerId, EventType,
    events::{EventData, RefreshTrigger},
    webhooks::{DeliveryId, EndpointId, EventId},
};
use freshet_store::{Fanout, StoreError, StoredEvent, Tx};
use serde_json::Value;

use super::{
    record::{Ready, record_leased},
    render,
};
use crate::Engine;

/// The refresh task events come from.
#[derive(Clone, Debug)]
pub struct RefreshOrigin {
    pub task_id: String,
    pub trigger: RefreshTrigger,
}

/// A store transaction whose recorded deliveries go to this node's dispatcher when it
/// commits.
#[must_use = "dropped without `commit`, the transaction rolls back"]
pub struct OutboxTx<'a> {
    tx: Tx,
    engine: &'a Engine,
    ready: Ready,
}

impl Engine {
    /// Begins a transaction to record events in, alongside the change they report.
    pub async fn begin(&self) -> Result<OutboxTx<'_>, StoreError> {
        Ok(OutboxTx {
            tx: self.store.begin().await?,
            engine: self,
            ready: Ready::default(),
        })
    }
}

impl Deref for OutboxTx<'_> {
    type Target = Tx;

    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl DerefMut for OutboxTx<'_> {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

impl OutboxTx<'_> {
    /// Commits, then sends what was recorded: deliveries leased to this node straight to its
    /// dispatcher, and a wake-up for the rest.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        self.engine.outbox.dispatch(self.ready).await;
        Ok(())
    }

    /// Records an event for every subscribed endpoint of `app`.
    pub async fn record(
        &mut self,
        app: ApplicationId,
        customer: Option<CustomerId>,
        data: EventData,
        event_type: EventType,
    ) -> Result<StoredEvent, StoreError> {
        let mut recorded = self
            .record_all(app, customer, vec![(event_type, data)])
            .await?;
        Ok(recorded.remove(0))
    }

    /// Records several events of one customer with one write of each kind (event rows,
    /// delivery rows) rather than one per event. Deliveries that may leave at once are written
    /// leased to this node, so that after the commit they go straight to its dispatcher rather
    /// than waiting for a claim.
    pub async fn record_all(
        &mut self,
        app: ApplicationId,
        customer: Option<CustomerId>,
        events: Vec<(EventType, EventData)>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.record_batch(app, customer, events, None).await
    }

    /// Records the events of one refresh task, like [`OutboxTx::record_all`]: on every
    /// endpoint they leave in the order recorded, each once the one before it settled (a
    /// receiver gets a refresh's stages in order, whatever the endpoint and however many
    /// nodes), and a vendor dialect gets those that answer a client's request only for the
    /// refreshes it reports ([`Dialect::reports_refresh`]) or when the endpoint takes
    /// scheduled refreshes.
    pub async fn record_refresh(
        &mut self,
        app: ApplicationId,
        customer: CustomerId,
        refresh: &RefreshOrigin,
        events: Vec<(EventType, EventData)>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.record_batch(app, Some(customer), events, Some(refresh))
            .await
    }

    /// Creates a delivery of `event` to `endpoint` with a fixed body (a data product for its
    /// callback URL), like [`Tx::insert_fixed_delivery`]; it is written pending, so the commit
    /// wakes the dispatcher to claim it.
    pub async fn insert_fixed_delivery(
        &mut self,
        app: ApplicationId,
        event: EventId,
        endpoint: EndpointId,
        body: &Value,
    ) -> Result<DeliveryId, StoreError> {
        let id = self
            .tx
            .insert_fixed_delivery(app, event, endpoint, body)
            .await?;
        self.ready.left_for_claim = true;
        self.ready
            .announce
            .push(freshet_store::partition_of(endpoint));
        Ok(id)
    }

    async fn record_batch(
        &mut self,
        app: ApplicationId,
        customer: Option<CustomerId>,
        events: Vec<(EventType, EventData)>,
        refresh: Option<&RefreshOrigin>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stored = Vec::with_capacity(events.len());
        for (t, data) in &events {
            let dialects = render::dialects_sending(*t);
            let opted_in: Vec<&'static str> = match refresh {
                Some(r) => Dialect::ALL
                    .into_iter()
                    .filter(|d| d.sends(*t) && !d.reports_refresh(*t, r.trigger))
                    .map(Dialect::name)
                    .collect(),
                None => Vec::new(),
            };
            stored.push((new_event(app, customer, *t, data)?, dialects, opted_in));
        }
        let series = refresh.map(|r| r.task_id.as_str());
        let batch: Vec<(StoredEvent, Fanout<'_>)> = stored
            .iter()
            .map(|(e, dialects, opted_in)| {
                let fanout = Fanout::Subscribers {
                    dialects,
                    opted_in,
                    series,
                };
                (e.clone(), fanout)
            })
            .collect();
        let (ready, _) =
            record_leased(&mut self.tx, &batch, self.engine.outbox.handoff.as_ref()).await?;
        self.ready.merge(ready);
        // Counted once written: the caller's commit comes next, and only a failing database
        // stops it.
        self.engine
            .metrics()
            .events_recorded(stored.iter().map(|(e, ..)| e.event_type));
        Ok(stored.into_iter().map(|(e, ..)| e).collect())
    }
}

/// A new event of `app`, its payload as stored.
pub(crate) fn new_event(
    app: ApplicationId,
    customer: Option<CustomerId>,
    event_type: EventType,
    data: &EventData,
) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: EventId::new(),
        application_id: app,
        event_type,
        customer_id: customer,
        created_at: freshet_model::time::now(),
        data: serde_json::to_value(data).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}
