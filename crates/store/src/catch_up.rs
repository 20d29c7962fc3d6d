//! Catching up after a receiver's outage: a success brings the endpoint's waiting retries
//! forward.
//!
//! The retry schedule spaces attempts out (5 s, then 5 min, …) because a failing receiver is
//! assumed to stay down. Once a delivery to the endpoint succeeds, that assumption is wrong
//! for every delivery still waiting for its retry: without this, half a burst sent during a
//! 30 s outage waited the full 5 minutes although new deliveries were already going through.
//! Each recorded batch with a success for an endpoint (and no failure for it) makes the next
//! [`PER_SUCCESS`] retries of that endpoint due now — gradually: a batch at a time, and only
//! while successes keep coming, so a receiver that recovered only partly is not flooded, one
//! that fails some requests is left to its schedule (its retries would otherwise race through
//! it), and the claim's own rules (ordering, leases) still apply to what was brought forward.

use crate::StoreKind;

/// Retries of one endpoint brought forward per batch that recorded a success for it.
pub const PER_SUCCESS: i64 = 50;

/// `$1` endpoint, `$2` now, `$3` how many: the endpoint's earliest retries not yet due,
/// made due now. The queue index's predicate is repeated word for word, which is what lets
/// SQLite read them from that partial index (migration 6) instead of walking every delivery
/// the endpoint ever had. PostgreSQL skips rows another transaction holds (a claim, another
/// node's catch-up) rather than waiting for them.
pub(crate) fn bring_forward_sql(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Postgres => {
            "UPDATE deliveries SET next_attempt_at = $2, updated_at = $2 WHERE id IN (\
               SELECT id FROM deliveries WHERE endpoint_id = $1 \
               AND status IN ('pending', 'failed', 'delivering') AND status = 'failed' \
               AND next_attempt_at > $2 ORDER BY next_attempt_at LIMIT $3 \
               FOR UPDATE SKIP LOCKED)"
        }
        StoreKind::Sqlite => {
            "UPDATE deliveries SET next_attempt_at = $2, updated_at = $2 WHERE id IN (\
               SELECT id FROM deliveries WHERE endpoint_id = $1 \
               AND status IN ('pending', 'failed', 'delivering') AND status = 'failed' \
               AND next_attempt_at > $2 ORDER BY next_attempt_at LIMIT $3)"
        }
    }
}
