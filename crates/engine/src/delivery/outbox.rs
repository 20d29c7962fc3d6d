//! A node's outbox, started in one call: [`Engine::start`] builds the event writer, the
//! hand-off and the dispatcher with its renderer, signing keys, sender and long-failure
//! handling, and runs the dispatcher until the node stops.

use std::{sync::Arc, time::Duration};

use freshet_model::webhooks::EndpointId;
use freshet_store::{Store, StoreKind};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{
    dispatcher::{Dispatcher, DispatcherConfig, OnLongFailure, Prepare},
    partitions::{self, Partitions},
    record::{self, Handoff, Ready, Recorder},
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
    /// How long a node holds its outbox partitions without renewing them (PostgreSQL): how
    /// soon the others take over the partitions of a node that stopped.
    pub partition_lease: Duration,
}

/// Past this many claims handed to the dispatcher and not yet taken, new deliveries wait for
/// an ordinary claim.
const HANDOFF_LIMIT: usize = 1024;

/// This node's way into its outbox: the event writer, the hand-off to its dispatcher (when it
/// runs one), the partitions it holds and the dispatcher's wake-up.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    pub(crate) recorder: Recorder,
    /// Where deliveries recorded in a caller's transaction go once it commits.
    pub(crate) handoff: Option<Handoff>,
    store: Store,
    partitions: Arc<Partitions>,
    wake: Arc<Notify>,
}

impl Outbox {
    /// Starts the event writer; call inside a Tokio runtime. With a `handoff`, events it
    /// records go straight to this node's dispatcher.
    pub(crate) fn new(
        store: Store,
        handoff: Option<Handoff>,
        partitions: Arc<Partitions>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let notify = wake.clone();
        let recorder = Recorder::start(
            store.clone(),
            handoff.clone(),
            partitions.clone(),
            metrics,
            move || notify.notify_one(),
        );
        Self {
            recorder,
            handoff,
            store,
            partitions,
            wake,
        }
    }

    /// Sends what a committed transaction recorded: its leased deliveries straight to this
    /// node's dispatcher, a wake-up for the rest, and word to the nodes holding the
    /// partitions of what this node does not send.
    pub(crate) async fn dispatch(&self, ready: Ready) {
        if let Some(h) = &self.handoff {
            h.hand(ready.claims);
        }
        if ready.left_for_claim {
            self.wake();
        }
        let mut elsewhere = ready.announce;
        elsewhere.retain(|p| !self.partitions.holds(*p));
        elsewhere.sort_unstable();
        elsewhere.dedup();
        record::announce(&self.store, &elsewhere).await;
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
    /// On PostgreSQL the node first takes its share of the outbox partitions, keeps it while
    /// it runs, and lets it go when it stops.
    pub fn start(
        store: Store,
        keys: Arc<SigningKeys>,
        policy: Arc<TargetPolicy>,
        config: DeliveryConfig,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let shared = store.kind() == StoreKind::Postgres;
        let partitions = Arc::new(if shared {
            Partitions::none()
        } else {
            Partitions::all()
        });
        let node = config.dispatcher.node.clone();
        let (handoff, handoff_rx) = Handoff::new(
            node.clone(),
            config.dispatcher.lease,
            HANDOFF_LIMIT,
            partitions.clone(),
        );
        let engine = Self::assemble(store.clone(), Some(handoff), partitions.clone());
        let wake = engine.outbox.wake.clone();
        let dispatcher = Dispatcher::new(
            store.clone(),
            Sender::new(policy, config.timeout),
            prepare(keys),
            disable_on_long_failure(engine.clone()),
            config.dispatcher,
            wake.clone(),
        )
        .with_partitions(partitions.clone())
        .with_handoff(handoff_rx)
        .with_metrics(engine.metrics().clone());
        let metrics = engine.metrics().clone();
        let lease = config.partition_lease;
        let dispatching = tokio::spawn(async move {
            if !shared {
                metrics.partitions_held(partitions.count());
                return Arc::new(dispatcher).run(stop).await;
            }
            // The partitions are let go only after the dispatcher recorded what it sent.
            let hold_stop = CancellationToken::new();
            if let Err(e) = partitions::round(&store, &partitions, &node, lease, &wake).await {
                tracing::warn!(error = %e, "taking outbox partitions failed; retrying");
            }
            metrics.partitions_held(partitions.count());
            let holding = tokio::spawn(partitions::hold(
                store.clone(),
                partitions.clone(),
                node,
                lease,
                wake.clone(),
                metrics,
                hold_stop.clone(),
            ));
            let listening = tokio::spawn(partitions::listen(store, partitions, wake, stop.clone()));
            Arc::new(dispatcher).run(stop).await;
            hold_stop.cancel();
            let _ = tokio::join!(holding, listening);
        });
        (engine, dispatching)
    }

    /// Tells the dispatcher holding `endpoint`'s partition that its deliveries became due, so
    /// they leave at once instead of at its next poll.
    pub async fn wake_dispatcher_for(&self, endpoint: EndpointId) {
        let partition = freshet_store::partition_of(endpoint);
        if self.outbox.partitions.holds(partition) {
            self.outbox.wake();
        } else {
            record::announce(&self.store, &[partition]).await;
        }
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
