//! The handle the API holds on the engines of its node.

use std::sync::Arc;

use freshet_store::Store;
use tokio::sync::Notify;

/// Shared by the API and the engines of one node.
#[derive(Clone, Debug)]
pub struct Engine {
    pub store: Store,
    wake: Arc<Notify>,
}

impl Engine {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            wake: Arc::new(Notify::new()),
        }
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
