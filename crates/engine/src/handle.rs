//! The handle the API holds on the engines of its node.

use std::sync::Arc;

use freshet_store::Store;
use tokio::sync::Notify;

use crate::{
    metrics::Metrics,
    recorder::{Handoff, Recorder},
};

/// Shared by the API and the engines of one node.
#[derive(Clone, Debug)]
pub struct Engine {
    pub store: Store,
    pub(crate) recorder: Recorder,
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
        let recorder = Recorder::start(store.clone(), handoff, metrics.clone(), move || {
            notify.notify_one()
        });
        Self {
            store,
            recorder,
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

    /// The notifier the dispatcher waits on.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}
