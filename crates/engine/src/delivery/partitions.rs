//! The outbox partitions this node holds, and the rounds that keep them.
//!
//! Every third of a lease the node says it is alive, renews what it holds and takes its fair
//! share of what is free ([`freshet_store::Store::hold_partitions`]). When more nodes join, its
//! share shrinks: it stops claiming the partitions it will give up, waits until what it sent
//! from them is recorded, and only then lets them go, so the next holder finds them settled.
//! A node that cannot renew stops treating its partitions as its own when its lease runs out
//! locally, before any other node may take them. A partition newly taken is quiet for
//! [`QUIET`] before its limited endpoints send: what the previous holder sent in its last
//! second counts against their rate too.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use freshet_store::{PARTITIONS, Store, fair_share, parse_announcement};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use tokio_util::sync::CancellationToken;

/// How long a newly taken partition's limited endpoints wait before sending.
pub const QUIET: Duration = Duration::from_millis(1_100);

/// How long before its lease runs out a node stops using a partition: room for two nodes'
/// clocks and for a round in flight.
const MARGIN: Duration = Duration::from_secs(1);

/// The partitions a node holds, as every part of the node sees them.
#[derive(Debug)]
pub struct Partitions {
    state: RwLock<State>,
    /// Deliveries claimed from each partition and not yet recorded.
    in_flight: Vec<AtomicUsize>,
}

#[derive(Debug, Default)]
struct State {
    /// Held, with when each may send to limited endpoints; `None` when not held.
    held: Vec<Option<Instant>>,
    /// Held but being given up: no longer claimed from.
    releasing: BTreeSet<u16>,
    /// Until when the lease holds, locally; `None`: for ever (a single-node store).
    until: Option<Instant>,
    /// What the claimer claims from: held, not being given up. `None`: everything.
    claimable: Option<Arc<[u16]>>,
    /// Nodes alive at the last round.
    nodes: u64,
}

impl Partitions {
    /// Holding nothing until the first round.
    pub fn none() -> Self {
        Self::with(State {
            held: vec![None; PARTITIONS as usize],
            claimable: Some(Arc::from(Vec::new())),
            ..Default::default()
        })
    }

    /// Holding everything for ever: a store only one node uses.
    pub fn all() -> Self {
        let long_ago = Instant::now();
        Self::with(State {
            held: vec![Some(long_ago); PARTITIONS as usize],
            nodes: 1,
            ..Default::default()
        })
    }

    fn with(state: State) -> Self {
        Self {
            state: RwLock::new(state),
            in_flight: (0..PARTITIONS).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node may take `partition`'s deliveries now.
    pub fn holds(&self, partition: u16) -> bool {
        self.read().usable(partition).is_some()
    }

    /// Whether `partition`'s limited endpoints may send now: held, and held long enough.
    pub fn settled_in(&self, partition: u16) -> bool {
        self.read()
            .usable(partition)
            .is_some_and(|quiet_until| Instant::now() >= quiet_until)
    }

    /// The partitions to claim from; `None` means all of them.
    pub fn claimable(&self) -> Option<Arc<[u16]>> {
        let s = self.read();
        if s.until.is_some_and(|until| Instant::now() >= until) {
            return Some(Arc::from(Vec::new()));
        }
        s.claimable.clone()
    }

    /// How many partitions this node holds, and how many nodes share them.
    pub fn count(&self) -> (usize, u64) {
        let s = self.read();
        (s.held.iter().filter(|h| h.is_some()).count(), s.nodes)
    }

    /// A delivery of `partition` was claimed.
    pub fn started(&self, partition: u16) {
        self.in_flight[partition as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// A delivery of `partition` was recorded.
    pub fn finished(&self, partition: u16) {
        self.in_flight[partition as usize].fetch_sub(1, Ordering::AcqRel);
    }

    /// Those being given up whose deliveries are all recorded: ready to let go.
    fn drained(&self) -> Vec<u16> {
        self.read()
            .releasing
            .iter()
            .copied()
            .filter(|p| self.in_flight[*p as usize].load(Ordering::Acquire) == 0)
            .collect()
    }

    /// Marks what exceeds the fair share among `nodes` as being given up: the highest
    /// numbers, so that nodes agree on which go without talking.
    fn shed_excess(&self, nodes: u64) {
        let mut s = self.write();
        let share = fair_share(nodes) as usize;
        let held: Vec<u16> = (0..PARTITIONS)
            .filter(|p| s.held[*p as usize].is_some() && !s.releasing.contains(p))
            .collect();
        if held.len() > share {
            let excess: Vec<u16> = held[share..].to_vec();
            s.releasing.extend(excess);
            s.claimable = Some(claimable(&s));
        }
    }

    /// Takes a round's answer: what is held now, until when. Answers whether it took any
    /// partition it did not hold (so the claimer should look at once).
    fn update(
        &self,
        held: &freshet_store::Held,
        released: &[u16],
        lease_from: Instant,
        lease: Duration,
    ) -> bool {
        let mut s = self.write();
        let now = Instant::now();
        let mut gained = false;
        let mut next = vec![None; PARTITIONS as usize];
        for p in &held.partitions {
            let i = *p as usize;
            next[i] = match s.held[i] {
                Some(at) => Some(at),
                None => {
                    gained = true;
                    Some(now + QUIET)
                }
            };
        }
        for p in released {
            s.releasing.remove(p);
        }
        // Given up elsewhere (lost while unable to renew): no longer being given up.
        s.releasing.retain(|p| next[*p as usize].is_some());
        s.held = next;
        s.until = Some(lease_from + lease.saturating_sub(MARGIN));
        s.nodes = held.nodes;
        s.claimable = Some(claimable(&s));
        gained
    }
}

impl State {
    /// When `partition`'s quiet ends, if this node may use it now: held, not being given up,
    /// and its lease not run out on this node's clock.
    fn usable(&self, partition: u16) -> Option<Instant> {
        let since = self.held.get(partition as usize).copied().flatten()?;
        let live = !self.releasing.contains(&partition)
            && self.until.is_none_or(|until| Instant::now() < until);
        live.then_some(since)
    }
}

fn claimable(s: &State) -> Arc<[u16]> {
    (0..PARTITIONS)
        .filter(|p| s.held[*p as usize].is_some() && !s.releasing.contains(p))
        .collect::<Vec<_>>()
        .into()
}

/// Keeps `partitions` held for `node` until `stop`, then lets them all go. `wake` is told
/// when the node took partitions, so its claimer looks at them at once.
pub async fn hold(
    store: Store,
    partitions: Arc<Partitions>,
    node: String,
    lease: Duration,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let every = lease / 3;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = round(&store, &partitions, &node, lease, &wake).await {
            tracing::warn!(error = %e, "renewing outbox partitions failed; retrying");
        }
        metrics.partitions_held(partitions.count());
    }
    if let Err(e) = store.leave_partitions(&node).await {
        tracing::warn!(error = %e, "could not let go of the outbox partitions; others take them when the lease ends");
    }
}

/// One round: renew, let go of what drained, take a fair share. The first round runs before
/// the claimer starts, so a node knows its partitions before it claims.
pub async fn round(
    store: &Store,
    partitions: &Partitions,
    node: &str,
    lease: Duration,
    wake: &Notify,
) -> Result<(), freshet_store::StoreError> {
    let release = partitions.drained();
    let started = Instant::now();
    let lease_t = time::Duration::try_from(lease).unwrap_or(time::Duration::seconds(10));
    let held = store.hold_partitions(node, lease_t, &release).await?;
    let gained = partitions.update(&held, &release, started, lease);
    // A node that joined shrinks everyone's share: shed at once rather than a round later.
    partitions.shed_excess(held.nodes);
    if gained {
        tracing::debug!(
            node,
            held = held.partitions.len(),
            nodes = held.nodes,
            "took outbox partitions"
        );
        wake.notify_one();
    }
    Ok(())
}

/// Wakes `wake` when another node announces work in a partition this node holds
/// (PostgreSQL's `LISTEN`); returns at once on a store no other node writes.
pub async fn listen(
    store: Store,
    partitions: Arc<Partitions>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    'connect: while !stop.is_cancelled() {
        let mut listener = match store.listen_outbox().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "listening for outbox work failed; polling meanwhile");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        loop {
            let note = tokio::select! {
                _ = stop.cancelled() => return,
                n = listener.recv() => n,
            };
            match note {
                Ok(n) => {
                    if parse_announcement(n.payload())
                        .into_iter()
                        .any(|p| partitions.holds(p))
                    {
                        wake.notify_one();
                    }
                }
                Err(e) => {
                    // Work announced while disconnected is found by the next poll.
                    tracing::warn!(error = %e, "the outbox listener lost its connection; reconnecting");
                    wake.notify_one();
                    continue 'connect;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ps: &[u16], nodes: u64) -> freshet_store::Held {
        freshet_store::Held {
            partitions: ps.to_vec(),
            nodes,
        }
    }

    #[test]
    fn a_node_alone_holds_what_it_took_and_new_ones_are_quiet() {
        let p = Partitions::none();
        assert!(!p.holds(3));
        let all: Vec<u16> = (0..PARTITIONS).collect();
        assert!(p.update(&held(&all, 1), &[], Instant::now(), Duration::from_secs(10)));
        assert!(p.holds(3));
        assert!(!p.settled_in(3), "quiet right after taking it");
        assert_eq!(p.claimable().unwrap().len(), 64);
        assert!(!p.update(&held(&all, 1), &[], Instant::now(), Duration::from_secs(10)));
    }

    #[test]
    fn a_joining_node_makes_the_highest_partitions_drain_then_go() {
        let p = Partitions::none();
        let all: Vec<u16> = (0..PARTITIONS).collect();
        p.update(&held(&all, 1), &[], Instant::now(), Duration::from_secs(10));
        p.started(63);
        p.shed_excess(2);
        assert!(p.holds(31) && !p.holds(32) && !p.holds(63));
        assert_eq!(p.claimable().unwrap().len(), 32);
        let drained = p.drained();
        assert!(!drained.contains(&63), "63 still has a delivery in flight");
        assert_eq!(drained.len(), 31);
        p.finished(63);
        assert_eq!(p.drained().len(), 32);
        let kept: Vec<u16> = (0..32).collect();
        p.update(
            &held(&kept, 2),
            &p.drained(),
            Instant::now(),
            Duration::from_secs(10),
        );
        assert!(p.drained().is_empty());
        assert_eq!(p.count(), (32, 2));
    }

    #[test]
    fn a_lease_run_out_locally_holds_nothing() {
        let p = Partitions::none();
        p.update(
            &held(&[1, 2], 1),
            &[],
            Instant::now(),
            Duration::from_millis(500),
        );
        assert!(
            !p.holds(1),
            "a lease shorter than the margin is already out"
        );
        assert_eq!(p.claimable().unwrap().len(), 0);
    }

    #[test]
    fn holding_everything_claims_without_a_list() {
        let p = Partitions::all();
        assert!(p.holds(0) && p.holds(63) && p.settled_in(63));
        assert!(p.claimable().is_none());
    }
}
