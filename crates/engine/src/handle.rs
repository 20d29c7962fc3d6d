//! The handle the API holds on the engines of its node.

use std::sync::Arc;

use freshet_store::Store;

use crate::{
    delivery::{outbox::Outbox, partitions::Partitions, record::Handoff},
    metrics::Metrics,
};

/// Shared by the API and the engines of one node. A node starts it with [`Engine::start`]
/// (`delivery/outbox.rs`), which also runs its dispatcher; what it records and sends is in
/// `delivery/`.
#[derive(Clone, Debug)]
pub struct Engine {
    pub store: Store,
    pub(crate) outbox: Outbox,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// A handle with no dispatcher of its own, for tools and tests: what it records waits for
    /// some dispatcher's claim. Call inside a Tokio runtime (it starts the event writer).
    pub fn new(store: Store) -> Self {
        Self::assemble(store, None, Arc::new(Partitions::none()))
    }

    /// With a `handoff`, events recorded through this handle go straight to this node's
    /// dispatcher.
    pub(crate) fn assemble(
        store: Store,
        handoff: Option<Handoff>,
        partitions: Arc<Partitions>,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let outbox = Outbox::new(store.clone(), handoff, partitions, metrics.clone());
        Self {
            store,
            outbox,
            metrics,
        }
    }

    /// This node's metrics, which every engine of the node counts in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}
