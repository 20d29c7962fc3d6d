//! A node's outbox, started in one call: [`Engine::start`] builds the event writer, the
//! hand-off and the dispatcher with its renderer, signing keys, sender and long-failure
//! handling, and runs the dispatcher until the node stops.

use std::{sync::Arc, time::Duration};

use freshet_store::Store;
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{
    dispatcher::{Dispatcher, DispatcherConfig, OnLongFailure, Prepare},
    record::{Handoff, Ready, Recorder},
    render,
    sender::Sender,
    target::TargetPolicy,
};
use crate::{Engine, metrics::Metrics, signing_keys::SigningKeys};

/// How a node delivers.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    pub dispatcher: DispatcherConfig,
    /// How long a receiver has to answer when its dialect does not say.
    pub timeout: Duration,
}

/// Past this many claims handed to the dispatcher and not yet taken, new deliveries wait for
/// an ordinary claim.
const HANDOFF_LIMIT: usize = 1024;

/// This node's way into its outbox: the event writer, the hand-off to its dispatcher (when it
/// runs one) and the dispatcher's wake-up.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    pub(crate) recorder: Recorder,
    /// Where deliveries recorded in a caller's transaction go once it commits.
    pub(crate) handoff: Option<Handoff>,
    wake: Arc<Notify>,
}

impl Outbox {
    /// Starts the event writer; call inside a Tokio runtime. With a `handoff`, events it
    /// records go straight to this node's dispatcher.
    pub(crate) fn new(store: Store, handoff: Option<Handoff>, metrics: Arc<Metrics>) -> Self {
        let wake = Arc::new(Notify::new());
        let notify = wake.clone();
        let recorder =
            Recorder::start(store, handoff.clone(), metrics, move || notify.notify_one());
        Self {
            recorder,
            handoff,
            wake,
        }
    }

    /// Sends what a committed transaction recorded: its leased deliveries straight to this
    /// node's dispatcher, and a wake-up for the rest.
    pub(crate) fn dispatch(&self, ready: Ready) {
        if let Some(h) = &self.handoff {
            h.hand(ready.claims);
        }
        if ready.left_for_claim {
            self.wake();
        }
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }
}

impl Engine {
    /// Starts a node's engine handle and its dispatcher, which runs until `stop` and then
    /// finishes what it claimed; join the returned task on shutdown. Deliveries are signed
    /// with `keys` (the Bud dialect's) and sent only where `policy` allows; an endpoint that
    /// failed for longer than the dispatcher's `disable_after` is disabled, with an event.
    pub fn start(
        store: Store,
        keys: Arc<SigningKeys>,
        policy: Arc<TargetPolicy>,
        config: DeliveryConfig,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (handoff, handoff_rx) = Handoff::new(
            config.dispatcher.node.clone(),
            config.dispatcher.lease,
            HANDOFF_LIMIT,
        );
        let engine = Self::assemble(store.clone(), Some(handoff));
        let dispatcher = Dispatcher::new(
            store,
            Sender::new(policy, config.timeout),
            prepare(keys),
            disable_on_long_failure(engine.clone()),
            config.dispatcher,
            engine.outbox.wake.clone(),
        )
        .with_handoff(handoff_rx)
        .with_metrics(engine.metrics().clone());
        let dispatching = tokio::spawn(Arc::new(dispatcher).run(stop));
        (engine, dispatching)
    }

    /// Tells this node's dispatcher that deliveries became due, so they leave at once instead
    /// of at its next poll.
    pub fn wake_dispatcher(&self) {
        self.outbox.wake();
    }
}

/// Renders and signs a claimed delivery, Bud-dialect bodies with the current key of `keys`.
fn prepare(keys: Arc<SigningKeys>) -> Prepare {
    Arc::new(move |claim, now| render::prepare(claim, now, &keys.current()))
}

fn disable_on_long_failure(engine: Engine) -> OnLongFailure {
    Arc::new(move |app, endpoint, since| {
        let engine = engine.clone();
        Box::pin(async move { engine.disable_failing(app, endpoint, since).await })
    })
}
