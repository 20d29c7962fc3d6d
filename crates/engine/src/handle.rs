//! The handle the API holds on the engines of its node.

use std::sync::Arc;

use freshet_store::Store;
use tokio::sync::Notify;

use crate::{
    metrics::Metrics,
    delivery::record::{Handoff, Ready, Recorder},
};

/// Shared by the API and the engines of one node.
#[derive(Clone, Debug)]
pub struct Engine {
    pub store: Store,
    pub(crate) recorder: Recorder,
    /// Where deliveries recorded in a caller's transaction go once it commits.
    pub(crate) handoff: Option<Handoff>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// Starts the node's event writer; call inside a Tokio runtime. With a `handoff`, events
    /// it records go straight to this node's dispatcher.
    pub fn new(store: Store, handoff: Option<Handoff>) -> Self {
        let wake = Arc::new(Notify::new());
        let notify = wake.clone();
        let metrics = Arc::new(Metrics::new());
        let recorder =
            Recorder::start(store.clone(), handoff.clone(), metrics.clone(), move || {
                notify.notify_one()
            });
        Self {
            store,
            recorder,
            handoff,
            wake,
            metrics,
        }
    }

    /// This node's metrics, which every engine of the node counts in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Tells this node's dispatcher that deliveries became due, so they leave at once instead
    /// of at its next poll.
    pub fn wake_dispatcher(&self) {
        self.wake.notify_one();
    }

    /// Sends what a committed transaction recorded: its leased deliveries straight to this
    /// node's dispatcher, and a wake-up for the rest.
    pub fn dispatch(&self, ready: Ready) {
        if let Some(h) = &self.handoff {
            h.hand(ready.claims);
        }
        if ready.left_for_claim {
            self.wake_dispatcher();
        }
    }

    /// The notifier the dispatcher waits on.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
