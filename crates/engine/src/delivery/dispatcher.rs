//! Dispatchers: the loop that moves deliveries from the outbox to receivers.
//!
//! A pipeline, so that one slow receiver never holds up the rest: the claimer leases batches
//! of due deliveries while there is room in flight; each claimed delivery is prepared (rendered
//! in its dialect and signed) and sent by its own task; the recorder gathers results and writes
//! them in batches. A wake-up from this node's API starts a claim at once; polling stays the
//! truth, so work left by other nodes or by a crash is found too. On shutdown the claimer stops
//! and everything already claimed is sent and recorded before [`Dispatcher::run`] returns.

use std::{sync::Arc, time::Duration};

use freshet_model::{ApplicationId, webhooks::EndpointId};
use freshet_store::{
    AttemptRecord, Claim, Finished, Outcome, Recorded, Scope, Store, StoreError, TakeNext,
    partition_of,
};
use time::OffsetDateTime;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

use super::{
    limits::Limits,
    partitions::Partitions,
    record::HandoffReceiver,
    retry::{RetryPolicy, policy_for},
    sender::{AttemptOutcome, Outgoing, Sender, Sent},
};

/// Tuning of a node's dispatcher.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// This node's name in leases and attempt records.
    pub node: String,
    /// Deliveries claimed per statement.
    pub batch_size: u32,
    /// Deliveries claimed but not yet recorded, at most.
    pub max_in_flight: usize,
    /// How long a claim is exclusive; must exceed the HTTP timeout.
    pub lease: Duration,
    /// How often to look for due work when not woken.
    pub idle_poll: Duration,
    /// An endpoint without a success for this long is disabled.
    pub disable_after: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            node: format!("node-{}", uuid::Uuid::now_v7().simple()),
            batch_size: 64,
            max_in_flight: 512,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(250),
            disable_after: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// Turns a claimed delivery into a request: the dialect's body, signature and headers.
pub type Prepare = Arc<dyn Fn(&Claim, OffsetDateTime) -> Result<Outgoing, String> + Send + Sync>;

/// Called with endpoints that failed for longer than `disable_after`.
pub type OnLongFailure = Arc<
    dyn Fn(
            ApplicationId,
            EndpointId,
            OffsetDateTime,
        ) -> futures::future::BoxFuture<'static, Result<(), StoreError>>
        + Send
        + Sync,
>;

/// A node's dispatcher.
pub struct Dispatcher {
    handoff: std::sync::Mutex<Option<HandoffReceiver>>,
    store: Store,
    sender: Sender,
    prepare: Prepare,
    on_long_failure: OnLongFailure,
    config: DispatcherConfig,
    wake: Arc<Notify>,
    /// Recorded attempts gave their room back: what a claimer waiting for room waits on.
    room_freed: Notify,
    metrics: Arc<Metrics>,
    /// The outbox partitions this node claims from.
    partitions: Arc<Partitions>,
    /// The limited endpoints' sends, kept here because this node alone sends to them.
    limits: Limits,
    /// A limited endpoint's answer came: room for its next delivery.
    limited_room: Notify,
}

struct Done {
    finished: Finished,
    partition: u16,
    /// The delivery had an ordering key (an ordered endpoint's customer, a refresh's series):
    /// once it is settled, the next one with the same key may be claimed.
    ordered: bool,
    permit: OwnedSemaphorePermit,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        sender: Sender,
        prepare: Prepare,
        on_long_failure: OnLongFailure,
        config: DispatcherConfig,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            handoff: Default::default(),
            store,
            sender,
            prepare,
            on_long_failure,
            config,
            wake,
            room_freed: Notify::new(),
            metrics: Arc::new(Metrics::new()),
            partitions: Arc::new(Partitions::all()),
            limits: Limits::default(),
            limited_room: Notify::new(),
        }
    }

    /// Claims only from the partitions in `partitions` (by default, all of them).
    pub fn with_partitions(mut self, partitions: Arc<Partitions>) -> Self {
        self.partitions = partitions;
        self
    }

    /// Counts attempts in `metrics` (the node's, which `/metrics` shows) rather than in a
    /// registry of its own.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Takes deliveries this node's recorder wrote already leased, besides those it claims.
    pub fn with_handoff(self, handoff: HandoffReceiver) -> Self {
        *self.handoff.lock().unwrap_or_else(|p| p.into_inner()) = Some(handoff);
        self
    }

    /// Claims, sends and records one batch, in order: the deterministic step tests drive.
    /// Returns how many deliveries it attempted.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let claims = self
            .store
            .claim_due(&self.config.node, self.lease(), self.config.batch_size)
            .await?;
        let n = claims.len();
        let attempts = claims.into_iter().map(|c| self.attempt(c));
        let finished: Vec<Finished> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .flatten()
            .collect();
        // Taking nothing: a test steps through what is due one claim at a time.
        self.record(&finished, false).await?;
        Ok(n)
    }

    /// Runs until `stop`, then finishes what it claimed.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let room = Arc::new(Semaphore::new(self.config.max_in_flight));
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Done>();
        // The recorder sends what recording leased to this node (the next in line behind what
        // settled) without keeping the channel open: it closes once every sender has reported.
        let recorder = tokio::spawn(self.clone().record_loop(
            done_rx,
            done_tx.downgrade(),
            stop.clone(),
        ));
        let handoff = self
            .handoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let handed = handoff.map(|h| {
            tokio::spawn(
                self.clone()
                    .handoff_loop(h, room.clone(), done_tx.clone(), stop.clone()),
            )
        });
        let limited = tokio::spawn(self.clone().limited_loop(
            room.clone(),
            done_tx.clone(),
            stop.clone(),
        ));
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            let free = room
                .available_permits()
                .min(self.config.batch_size as usize);
            if free == 0 {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = self.room_freed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
                continue;
            }
            let partitions = self.partitions.claimable();
            let scope = Scope::Unlimited {
                partitions: partitions.as_deref(),
            };
            match self
                .store
                .claim(&self.config.node, self.lease(), free as u32, scope)
                .await
            {
                Ok(claims) if claims.is_empty() => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.idle_poll) => {}
                    }
                }
                Ok(claims) => {
                    for claim in claims {
                        let permit = room
                            .clone()
                            .try_acquire_owned()
                            .expect("claimed within the free room");
                        self.spawn_send(claim, permit, &done_tx);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if let Some(h) = handed {
            let _ = h.await;
        }
        let _ = limited.await;
        drop(done_tx);
        // Every spawned attempt holds a sender; the recorder ends once they all reported.
        let _ = recorder.await;
        tracing::info!(node = %self.config.node, "dispatcher stopped");
    }

    /// Sends what the recorder handed over, within the same room in flight. On stop it closes
    /// the hand-off and sends what was already handed over: those deliveries are leased to
    /// this node, so leaving them would delay them until the lease expires.
    async fn handoff_loop(
        self: Arc<Self>,
        mut h: HandoffReceiver,
        room: Arc<Semaphore>,
        done: mpsc::UnboundedSender<Done>,
        stop: CancellationToken,
    ) {
        h.open.store(true, std::sync::atomic::Ordering::Release);
        loop {
            let claim = tokio::select! {
                c = h.claims.recv() => c,
                _ = stop.cancelled() => None,
            };
            let Some(claim) = claim else { break };
            self.spawn_attempt(claim, &room, &done, &h).await;
        }
        h.open.store(false, std::sync::atomic::Ordering::Release);
        while let Ok(claim) = h.claims.try_recv() {
            self.spawn_attempt(claim, &room, &done, &h).await;
        }
    }

    /// Claims the deliveries of limited endpoints, each only as far as its limits leave room,
    /// so that what waits stays in the outbox. Only partitions held long enough count: what
    /// the previous holder sent in its last second still counts against the rate.
    async fn limited_loop(
        self: Arc<Self>,
        room: Arc<Semaphore>,
        done: mpsc::UnboundedSender<Done>,
        stop: CancellationToken,
    ) {
        /// How soon to look again while a limited endpoint has work waiting.
        const BUSY: Duration = Duration::from_millis(20);
        while !stop.is_cancelled() {
            let now = std::time::Instant::now();
            let mut again = self.config.idle_poll;
            match self.store.limited_endpoints_due().await {
                Ok(due) => {
                    for e in due
                        .iter()
                        .filter(|e| self.partitions.holds(partition_of(e.id)))
                    {
                        if !self.partitions.settled_in(partition_of(e.id)) {
                            again = again.min(BUSY * 5);
                            continue;
                        }
                        let r = self.limits.room(e, now);
                        if let Some(at) = r.more_at {
                            again = again.min(at.saturating_duration_since(now));
                        }
                        let n = r
                            .now
                            .min(self.config.batch_size)
                            .min(room.available_permits() as u32);
                        if n == 0 {
                            // Held back by what is in flight: an answer wakes this loop.
                            continue;
                        }
                        again = again.min(BUSY);
                        let claimed = self
                            .store
                            .claim(&self.config.node, self.lease(), n, Scope::Endpoint(e.id))
                            .await;
                        match claimed {
                            Ok(claims) => {
                                self.limits.started(e.id, claims.len() as u32);
                                for claim in claims {
                                    let Ok(permit) = room.clone().acquire_owned().await else {
                                        return;
                                    };
                                    self.spawn_send(claim, permit, &done);
                                }
                            }
                            Err(err) => {
                                tracing::warn!(error = %err, "claiming a limited endpoint's deliveries failed; retrying")
                            }
                        }
                    }
                    self.limits.forget_idle(now);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reading limited endpoints failed; retrying")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.limited_room.notified() => {}
                _ = tokio::time::sleep(again) => {}
            }
        }
    }

    async fn spawn_attempt(
        self: &Arc<Self>,
        claim: Claim,
        room: &Arc<Semaphore>,
        done: &mpsc::UnboundedSender<Done>,
        h: &HandoffReceiver,
    ) {
        h.queued.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        let Ok(permit) = room.clone().acquire_owned().await else {
            return;
        };
        self.spawn_send(claim, permit, done);
    }

    /// Sends `claim` in a task of its own, which reports to the recorder loop.
    fn spawn_send(
        self: &Arc<Self>,
        claim: Claim,
        permit: OwnedSemaphorePermit,
        done: &mpsc::UnboundedSender<Done>,
    ) {
        let (this, done) = (self.clone(), done.clone());
        let partition = partition_of(claim.endpoint.id);
        self.partitions.started(partition);
        tokio::spawn(async move {
            let ordered = claim.endpoint.ordered || claim.ordering_key.is_some();
            let limited = claim.endpoint.limited().then_some(claim.endpoint.id);
            let finished = this.attempt(claim).await;
            if let Some(endpoint) = limited {
                this.limits.finished(endpoint, std::time::Instant::now());
                this.limited_room.notify_one();
            }
            let Some(finished) = finished else {
                this.partitions.finished(partition);
                return;
            };
            let _ = done.send(Done {
                finished,
                partition,
                ordered,
                permit,
            });
        });
    }

    async fn record_loop(
        self: Arc<Self>,
        mut done: mpsc::UnboundedReceiver<Done>,
        resend: mpsc::WeakUnboundedSender<Done>,
        stop: CancellationToken,
    ) {
        let max = self.config.batch_size as usize * 4;
        let mut batch = Vec::with_capacity(max);
        while let Some(first) = done.recv().await {
            batch.push(first);
            while batch.len() < max {
                match done.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
            let finished: Vec<Finished> = batch.iter().map(|d| d.finished.clone()).collect();
            let wake_claimer = claimable_now(&batch, freshet_model::time::now());
            let mut delay = Duration::from_millis(50);
            // A failed write is retried: these attempts happened and must be on record (and
            // until they are, their leases keep the deliveries from being sent again).
            let recorded = loop {
                // Stopping, nothing more is taken: what follows is made due for a claim.
                match self.record(&finished, !stop.is_cancelled()).await {
                    Ok(r) => break r,
                    Err(e) => {
                        tracing::warn!(error = %e, n = finished.len(), "recording attempts failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            };
            // What was leased to this node goes out in the room of what it followed: each
            // settled delivery has at most one next in line. Started before what it followed
            // counts as finished, so a partition being let go is not released in between.
            let partitions: Vec<u16> = batch.iter().map(|d| d.partition).collect();
            let mut permits: Vec<_> = batch.drain(..).map(|d| d.permit).collect();
            let taken = recorded.next.len();
            match resend.upgrade() {
                Some(done) => {
                    for claim in recorded.next {
                        // Never more than the batch's permits; waiting for room here would wait
                        // on this loop itself.
                        let Some(permit) = permits.pop() else {
                            tracing::warn!(
                                "more deliveries next in line than attempts recorded; the rest wait for their lease"
                            );
                            break;
                        };
                        self.spawn_send(claim, permit, &done);
                    }
                }
                // Stopped with nothing in flight: the leases run out and another claim sends them.
                None if taken > 0 => {
                    tracing::info!(
                        taken,
                        "stopping: deliveries next in line left to their leases"
                    )
                }
                None => {}
            }
            for p in partitions {
                self.partitions.finished(p);
            }
            drop(permits); // room for more claims
            self.room_freed.notify_one();
            if wake_claimer || recorded.brought_forward > 0 {
                self.wake.notify_one();
            }
        }
    }

    /// Records attempts, taking what follows them in line; answers how many waiting retries a
    /// success made due now and what this node is to send next.
    async fn record(&self, finished: &[Finished], take: bool) -> Result<Recorded, StoreError> {
        let partitions = self.partitions.claimable();
        let take = take.then(|| TakeNext {
            node: &self.config.node,
            lease: self.lease(),
            partitions: partitions.as_deref(),
        });
        let recorded = self.store.finish_attempts_taking(finished, take).await?;
        let now = freshet_model::time::now();
        for &(app, endpoint, since) in &recorded.failing {
            if now - since >= self.config.disable_after {
                // The attempts are recorded: a failure here must not record them again. The
                // endpoint's next failure tries the disabling again.
                if let Err(e) = (self.on_long_failure)(app, endpoint, since).await {
                    tracing::warn!(endpoint = %endpoint, error = %e, "disabling a long-failing endpoint failed; its next failure tries again");
                }
            }
        }
        Ok(recorded)
    }

    fn lease(&self) -> time::Duration {
        time::Duration::try_from(self.config.lease).unwrap_or(time::Duration::MINUTE)
    }

    async fn attempt(&self, claim: Claim) -> Option<Finished> {
        attempt(
            &self.sender,
            &self.prepare,
            &self.config.node,
            &self.metrics,
            claim,
        )
        .await
    }
}

/// Whether recording `batch` makes a delivery claimable at once: a retry already due, or the
/// next delivery of the same ordering key, which waited for this one to settle. Only then is an
/// idle claimer woken: waking it after every batch cost a claim that found nothing (a
/// statement per batch on the database). Later retries are found by polling.
fn claimable_now(batch: &[Done], now: OffsetDateTime) -> bool {
    batch.iter().any(|d| match d.finished.outcome {
        Outcome::Retry { at } => at <= now,
        Outcome::Succeeded | Outcome::Dead => d.ordered,
    })
}

/// How long before its lease runs out a claim is no longer sent: room for the clocks of two
/// nodes to disagree a little.
const LEASE_MARGIN: time::Duration = time::Duration::SECOND;

/// Prepares and sends one delivery, counts it, and decides what happens next. `None` when the
/// claim's lease ran out before the send could start (it waited too long for room): the
/// delivery may be another node's by now, or cancelled by an erasure that waited for this
/// lease to end, so it is left alone, unsent and unrecorded, for whoever claims it next.
async fn attempt(
    sender: &Sender,
    prepare: &Prepare,
    node: &str,
    metrics: &Metrics,
    claim: Claim,
) -> Option<Finished> {
    let now = freshet_model::time::now();
    if now + LEASE_MARGIN >= claim.lease_until {
        tracing::debug!(delivery = %claim.delivery.id, "lease ran out before sending; left for the next claim");
        return None;
    }
    let sent = match prepare(&claim, now) {
        Ok(out) => sender.send(out).await,
        Err(e) => Sent {
            outcome: AttemptOutcome::RenderError,
            status: None,
            latency: Duration::ZERO,
            excerpt: None,
            retry_after: None,
            error: Some(format!("could not render the event: {e}")),
        },
    };
    let policy = policy_for(
        &claim.endpoint.dialect,
        claim.endpoint.retry_schedule.as_deref(),
    )
    .retries;
    let outcome = decide(
        &policy,
        claim.delivery.attempts,
        &sent,
        now,
        rand::random_range(-1.0..=1.0),
    );
    if !sent.succeeded() {
        tracing::debug!(delivery = %claim.delivery.id, status = ?sent.status, error = ?sent.error, "attempt failed");
    }
    metrics.delivery_attempted(
        &claim.endpoint.dialect,
        sent.outcome,
        sent.latency,
        outcome == Outcome::Dead,
    );
    Some(Finished {
        application_id: claim.delivery.application_id,
        delivery_id: claim.delivery.id,
        endpoint_id: claim.endpoint.id,
        in_line: claim.ordering_key.is_some(),
        token: claim.token,
        attempt: AttemptRecord {
            attempted_at: now,
            status_code: sent.status,
            latency_ms: sent.latency.as_millis() as u64,
            error: sent.error,
            response_excerpt: sent.excerpt,
            node: node.to_string(),
        },
        outcome,
    })
}

/// What follows an attempt: done, another try later, or no more tries.
pub fn decide(
    policy: &RetryPolicy,
    attempts_before: u32,
    sent: &Sent,
    now: OffsetDateTime,
    jitter: f64,
) -> Outcome {
    if sent.succeeded() {
        return Outcome::Succeeded;
    }
    let asked = sent
        .retry_after
        .filter(|_| matches!(sent.status, Some(429 | 503)));
    match policy.next_wait(attempts_before + 1, asked, jitter) {
        Some(wait) => Outcome::Retry { at: now + wait },
        None => Outcome::Dead,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn sent(status: Option<u16>, retry_after: Option<u64>) -> Sent {
        Sent {
            outcome: match status {
                Some(200..300) => AttemptOutcome::Success,
                Some(_) => AttemptOutcome::HttpError,
                None => AttemptOutcome::ConnectError,
            },
            status,
            latency: Duration::from_millis(1),
            excerpt: None,
            retry_after: retry_after.map(Duration::from_secs),
            error: None,
        }
    }

    #[test]
    fn outcomes_follow_the_schedule() {
        let p = RetryPolicy::default();
        let now = datetime!(2026-11-24 12:00 UTC);
        assert_eq!(
            decide(&p, 0, &sent(Some(204), None), now, 0.0),
            Outcome::Succeeded
        );
        assert_eq!(
            decide(&p, 0, &sent(Some(500), None), now, 0.0),
            Outcome::Retry {
                at: now + time::Duration::seconds(5)
            }
        );
        assert_eq!(
            decide(&p, 1, &sent(None, None), now, 0.0),
            Outcome::Retry {
                at: now + time::Duration::minutes(5)
            }
        );
        assert_eq!(
            decide(&p, 7, &sent(Some(500), None), now, 0.0),
            Outcome::Dead
        );
        assert_eq!(
            decide(&p, 0, &sent(Some(302), None), now, 0.0),
            Outcome::Retry {
                at: now + time::Duration::seconds(5)
            }
        );
    }

    #[test]
    fn retry_after_counts_only_on_429_and_503() {
        let p = RetryPolicy::default();
        let now = datetime!(2026-11-24 12:00 UTC);
        let wait = |s| match decide(&p, 0, &sent(Some(s), Some(90)), now, 0.0) {
            Outcome::Retry { at } => (at - now).whole_seconds(),
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(429), 90);
        assert_eq!(wait(503), 90);
        assert_eq!(wait(500), 5);
    }
}
