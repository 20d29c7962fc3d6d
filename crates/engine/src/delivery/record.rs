//! Writing events: group commit for events recorded on their own (test events, disabled
//! endpoints), and the lease-on-write hand-off to this node's dispatcher that every write uses,
//! a caller's [`OutboxTx`](super::transaction::OutboxTx) included.
//!
//! Each transaction costs a sync to disk, so recording events one transaction each caps a
//! node at the disk's sync rate. Callers instead hand their event to one writer task, which
//! puts everything that arrived meanwhile into one transaction; each caller is answered only
//! after that transaction committed, so an acknowledged event is as durable as before — it
//! just shares its sync with its neighbours. Under light load a batch is a single event and
//! nothing waits.
//!
//! While this node's dispatcher is running and not backed up, deliveries that may leave at
//! once are written already leased to this node and handed straight to the dispatcher: no
//! claim transaction stands between an acknowledged event and its first attempt. A lease is a
//! lease: if the node dies before sending, the delivery is taken over like any other claim.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use freshet_model::webhooks::{EndpointId, EventId};
use freshet_store::{Claim, Fanout, Lease, Store, StoreError, StoreKind, StoredEvent, Tx, Written};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::partitions::Partitions;
use crate::metrics::Metrics;

/// Where an event goes, owned so it can cross to the writer task.
#[derive(Clone, Debug)]
pub enum Target {
    Subscribers(Vec<&'static str>),
    Only(EndpointId),
}

struct Job {
    event: StoredEvent,
    target: Target,
    /// `Ok(false)`: not stored, its one endpoint does not exist.
    done: oneshot::Sender<Result<bool, StoreError>>,
}

/// The channel from the recorder to this node's dispatcher.
#[derive(Clone, Debug)]
pub struct Handoff {
    node: String,
    lease: Duration,
    claims: mpsc::UnboundedSender<Claim>,
    /// The dispatcher is running and takes handed-off claims.
    pub open: Arc<AtomicBool>,
    /// Claims handed off and not yet taken.
    pub queued: Arc<AtomicUsize>,
    /// Past this many queued, new deliveries wait for an ordinary claim.
    limit: usize,
    /// Only deliveries of partitions this node holds are leased to it.
    partitions: Arc<Partitions>,
}

/// The dispatcher's end of the hand-off.
#[derive(Debug)]
pub struct HandoffReceiver {
    pub claims: mpsc::UnboundedReceiver<Claim>,
    pub open: Arc<AtomicBool>,
    pub queued: Arc<AtomicUsize>,
}

impl Handoff {
    /// A hand-off for `node`, whose leases last `lease`.
    pub fn new(
        node: String,
        lease: Duration,
        limit: usize,
        partitions: Arc<Partitions>,
    ) -> (Self, HandoffReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicUsize::new(0));
        let this = Self {
            node,
            lease,
            claims: tx,
            open: open.clone(),
            queued: queued.clone(),
            limit,
            partitions,
        };
        (
            this,
            HandoffReceiver {
                claims: rx,
                open,
                queued,
            },
        )
    }

    fn accepting(&self) -> bool {
        self.open.load(Ordering::Acquire) && self.queued.load(Ordering::Acquire) < self.limit
    }

    /// A new claim token and its lease's end, when the dispatcher takes hand-offs now.
    pub(crate) fn lease(&self) -> Option<(String, OffsetDateTime)> {
        self.accepting().then(|| {
            (
                format!("{}/{}", self.node, uuid::Uuid::now_v7().simple()),
                freshet_model::time::now()
                    + time::Duration::try_from(self.lease).unwrap_or(time::Duration::MINUTE),
            )
        })
    }

    /// Hands committed, leased deliveries to the dispatcher.
    pub(crate) fn hand(&self, claims: Vec<Claim>) {
        for claim in claims {
            self.queued.fetch_add(1, Ordering::AcqRel);
            if self.claims.send(claim).is_err() {
                // The dispatcher is gone: the lease expires and another claim sends it.
                self.queued.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Deliveries an uncommitted transaction wrote: those leased to this node, to hand to its
/// dispatcher, and whether others wait for an ordinary claim. An
/// [`OutboxTx`](super::transaction::OutboxTx) gathers them and hands them over when it
/// commits; dropped, its deliveries still go out, but only when their lease expires.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    pub(crate) claims: Vec<Claim>,
    pub(crate) left_for_claim: bool,
    /// Partitions another node holds with deliveries due: it hears of them after the commit.
    pub(crate) announce: Vec<u16>,
}

impl Ready {
    /// Adds what another write of the same transaction left.
    pub(crate) fn merge(&mut self, other: Ready) {
        self.claims.extend(other.claims);
        self.left_for_claim |= other.left_for_claim;
        self.announce.extend(other.announce);
    }
}

/// Writes `batch` in `tx`, leasing to this node the deliveries that may leave at once when
/// `handoff` takes them now. Returns them as [`Ready`], with the events not stored because
/// their one endpoint does not exist.
pub(crate) async fn record_leased(
    tx: &mut Tx,
    batch: &[(StoredEvent, Fanout<'_>)],
    handoff: Option<&Handoff>,
) -> Result<(Ready, Vec<EventId>), StoreError> {
    let lease = handoff.and_then(Handoff::lease);
    let holds = |p| handoff.is_some_and(|h| h.partitions.holds(p));
    let written = tx.record_batch(batch, as_lease(&lease, &holds)).await?;
    Ok(ready(written))
}

fn as_lease<'a>(
    lease: &'a Option<(String, OffsetDateTime)>,
    holds: &'a (dyn Fn(u16) -> bool + Sync),
) -> Option<Lease<'a>> {
    lease.as_ref().map(|(token, until)| Lease {
        token,
        until: *until,
        holds,
    })
}

fn ready(written: Written) -> (Ready, Vec<EventId>) {
    let ready = Ready {
        left_for_claim: written.deliveries > written.claims.len() as u64,
        claims: written.claims,
        announce: written.announce,
    };
    (ready, written.missing)
}

/// Tells the nodes holding `partitions` that deliveries are due there. A failure only costs
/// time: the holder's poll finds them.
pub(crate) async fn announce(store: &Store, partitions: &[u16]) {
    if let Err(e) = store.announce(partitions).await {
        tracing::debug!(error = %e, "announcing outbox work failed; its holder finds it by polling");
    }
}

/// The handle callers record through.
#[derive(Clone, Debug)]
pub struct Recorder {
    jobs: mpsc::Sender<Job>,
}

/// Most events in one transaction.
const MAX_BATCH: usize = 512;

/// How often the writer yields before writing, taking what arrived meanwhile: requests this
/// node is already handling join the batch instead of waiting for the next commit. Under light
/// load nothing arrives and it costs microseconds; under load it makes batches larger, which
/// is what PostgreSQL charges by (three nodes on two cores: +8 % events/s, -8 % database CPU
/// per event, `docs/benchmarks.md`).
const GATHER_YIELDS: usize = 3;

impl Recorder {
    /// Starts the writer task; it ends when every handle is dropped. `after_commit` runs when
    /// a batch left deliveries for an ordinary claim.
    pub fn start(
        store: Store,
        handoff: Option<Handoff>,
        partitions: Arc<Partitions>,
        metrics: Arc<Metrics>,
        after_commit: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        // PostgreSQL commits concurrent transactions together: a second writer fills its
        // batch while the first waits for its commit to reach the disk. SQLite has one writer.
        let writers = match store.kind() {
            StoreKind::Postgres => 2,
            StoreKind::Sqlite => 1,
        };
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let after_commit: Arc<dyn Fn() + Send + Sync> = Arc::new(after_commit);
        for writer in 0..writers {
            tokio::spawn(write_loop(
                store.clone(),
                rx.clone(),
                handoff.clone(),
                // Beside other nodes, their writers already overlap this one's commits, and
                // a second writer here would only halve this node's batches: more statements
                // per event for the same database.
                (writer > 0).then(|| partitions.clone()),
                metrics.clone(),
                after_commit.clone(),
            ));
        }
        Self { jobs }
    }

    /// Records `event`, returning once it is committed: `true`, or `false` when its target was
    /// one endpoint that does not exist (then nothing is stored).
    pub async fn record(&self, event: StoredEvent, target: Target) -> Result<bool, StoreError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                event,
                target,
                done,
            })
            .await
            .map_err(|_| StoreError::Corrupt("the event writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Corrupt("the event writer has stopped".into()))?
    }
}

/// `only_alone`: this writer writes only while no other node shares the database.
async fn write_loop(
    store: Store,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    handoff: Option<Handoff>,
    only_alone: Option<Arc<Partitions>>,
    metrics: Arc<Metrics>,
    after_commit: Arc<dyn Fn() + Send + Sync>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if only_alone.as_ref().is_some_and(|p| p.count().1 > 1) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                break;
            }
            for _ in 0..GATHER_YIELDS {
                tokio::task::yield_now().await;
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => batch.push(j),
                        Err(_) => break,
                    }
                }
            }
        }
        match write(&store, &batch, handoff.as_ref()).await {
            Ok(written) => {
                if written.left_for_claim {
                    after_commit();
                }
                for job in batch.drain(..) {
                    let stored = !written.missing.contains(&job.event.id);
                    if stored {
                        metrics.events_recorded([job.event.event_type]);
                    }
                    let _ = job.done.send(Ok(stored));
                }
                if !written.announce.is_empty() {
                    announce(&store, &written.announce).await;
                }
            }
            Err(StoreError::Unavailable(why)) => {
                // Writing one by one would wait out the database once per event: every caller
                // hears at once, and may try again.
                tracing::warn!(error = %why, n = batch.len(), "the database is unavailable; events not recorded");
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(StoreError::Unavailable(why.clone())));
                }
            }
            Err(e) => {
                // One bad event must not fail its neighbours: retry each alone.
                tracing::warn!(error = %e, n = batch.len(), "batched event write failed; writing one by one");
                for job in batch.drain(..) {
                    let one = match write(&store, std::slice::from_ref(&job), None).await {
                        Ok(w) => {
                            announce(&store, &w.announce).await;
                            Ok(w.missing.is_empty())
                        }
                        Err(e) => Err(e),
                    };
                    if matches!(one, Ok(true)) {
                        metrics.events_recorded([job.event.event_type]);
                    }
                    let _ = job.done.send(one);
                }
                after_commit();
            }
        }
    }
}

/// What a batch write did, as the writer task needs it.
struct BatchWritten {
    /// Some deliveries wait for an ordinary claim.
    left_for_claim: bool,
    /// Events not stored: their one endpoint does not exist.
    missing: Vec<EventId>,
    /// Partitions another node holds with deliveries due.
    announce: Vec<u16>,
}

async fn write(
    store: &Store,
    jobs: &[Job],
    handoff: Option<&Handoff>,
) -> Result<BatchWritten, StoreError> {
    let batch: Vec<(StoredEvent, Fanout<'_>)> = jobs
        .iter()
        .map(|job| {
            let fanout = match &job.target {
                Target::Subscribers(dialects) => Fanout::to(dialects),
                Target::Only(endpoint) => Fanout::Only(*endpoint),
            };
            (job.event.clone(), fanout)
        })
        .collect();
    let lease = handoff.and_then(Handoff::lease);
    let holds = |p| handoff.is_some_and(|h| h.partitions.holds(p));
    let (ready, missing) = ready(store.record_batch(&batch, as_lease(&lease, &holds)).await?);
    if let Some(h) = handoff {
        h.hand(ready.claims);
    }
    Ok(BatchWritten {
        left_for_claim: ready.left_for_claim,
        announce: ready.announce,
        missing,
    })
}
