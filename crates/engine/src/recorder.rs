//! Group commit for events recorded on their own (test events, API-driven events).
//!
//! Each transaction costs a sync to disk, so recording events one transaction each caps a
//! node at the disk's sync rate. Callers instead hand their event to one writer task, which
//! puts everything that arrived meanwhile into one transaction; each caller is answered only
//! after that transaction committed, so an acknowledged event is as durable as before — it
//! just shares its sync with its neighbours. Under light load a batch is a single event and
//! nothing waits.

use freshet_model::webhooks::EndpointId;
use freshet_store::{Fanout, Store, StoreError, StoredEvent};
use tokio::sync::{mpsc, oneshot};

/// Where an event goes, owned so it can cross to the writer task.
#[derive(Clone, Debug)]
pub enum Target {
    Subscribers(Vec<&'static str>),
    Only(EndpointId),
}

struct Job {
    event: StoredEvent,
    target: Target,
    done: oneshot::Sender<Result<(), String>>,
}

/// The handle callers record through.
#[derive(Clone, Debug)]
pub struct Recorder {
    jobs: mpsc::Sender<Job>,
}

/// Most events in one transaction.
const MAX_BATCH: usize = 512;

impl Recorder {
    /// Starts the writer task; it ends when every handle is dropped.
    pub fn start(store: Store, after_commit: impl Fn() + Send + 'static) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_loop(store, rx, after_commit));
        Self { jobs }
    }

    /// Records `event`, returning once it is committed.
    pub async fn record(&self, event: StoredEvent, target: Target) -> Result<(), StoreError> {
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
            .map_err(StoreError::Corrupt)
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<Job>, after_commit: impl Fn()) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write(&store, &batch).await {
            Ok(()) => {
                after_commit();
                for job in batch.drain(..) {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(e) => {
                // One bad event must not fail its neighbours: retry each alone.
                tracing::warn!(error = %e, n = batch.len(), "batched event write failed; writing one by one");
                for job in batch.drain(..) {
                    let one = write(&store, std::slice::from_ref(&job))
                        .await
                        .map_err(|e| e.to_string());
                    let _ = job.done.send(one);
                }
                after_commit();
            }
        }
    }
}

async fn write(store: &Store, jobs: &[Job]) -> Result<(), StoreError> {
    let batch: Vec<(StoredEvent, Fanout<'_>)> = jobs
        .iter()
        .map(|job| {
            let fanout = match &job.target {
                Target::Subscribers(dialects) => Fanout::Subscribers { dialects },
                Target::Only(endpoint) => Fanout::Only(*endpoint),
            };
            (job.event.clone(), fanout)
        })
        .collect();
    let mut tx = store.begin().await?;
    tx.record_events(&batch).await?;
    tx.commit().await
}
