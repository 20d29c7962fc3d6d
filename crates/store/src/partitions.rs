//! Outbox partitions: which node claims which endpoints' deliveries.
//!
//! The outbox is split by endpoint into [`PARTITIONS`] partitions, many more than nodes. On
//! PostgreSQL each partition is held by one node under a lease it renews; a node claims only
//! from the partitions it holds, so nodes do not compete for the same rows, and an endpoint's
//! deliveries leave from one node at a time, which is what lets that node enforce the
//! endpoint's limits alone. The partition of a delivery is a function of its endpoint id
//! ([`partition_of`], and the same expression in SQL), so no row stores it. SQLite serves one
//! node, which holds every partition without asking.

use freshet_model::webhooks::EndpointId;
use time::Duration;

use crate::{Backend, Result, Store, codec::Ts};

/// How many partitions the outbox has: fixed, and many more than nodes.
pub const PARTITIONS: u16 = 64;

/// The PostgreSQL channel on which nodes announce work left in the outbox. The payload lists
/// the partitions, comma-separated.
pub const OUTBOX_CHANNEL: &str = "freshet_outbox";

/// The SQL for a delivery row's partition, matching [`partition_of`].
#[macro_export]
#[doc(hidden)]
macro_rules! partition_sql {
    ($alias:literal) => {
        concat!("(get_byte(uuid_send(", $alias, ".endpoint_id), 15) % 64)")
    };
}

/// The partition an endpoint's deliveries belong to: its id's last byte, random in a UUIDv7.
pub fn partition_of(endpoint: EndpointId) -> u16 {
    u16::from(endpoint.0.as_bytes()[15]) % PARTITIONS
}

/// What one round of holding partitions found. No lease end or take time: a node times its
/// lease on its own clock, from before the round began, so the database's clock never decides
/// how long a node may go on using a partition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Held {
    /// The partitions this node holds, in order.
    pub partitions: Vec<u16>,
    /// Nodes alive now, this one included.
    pub nodes: u64,
}

impl Store {
    /// Says `node` is alive, renews the partitions it holds, lets go of those in `release`,
    /// and takes free ones (never held, let go, or whose holder stopped renewing) up to its
    /// fair share of the live nodes. One transaction, so a round is all or nothing.
    pub async fn hold_partitions(
        &self,
        node: &str,
        lease: Duration,
        release: &[u16],
    ) -> Result<Held> {
        let now = freshet_model::time::now();
        let until = now + lease;
        let pool = match &self.backend {
            Backend::Postgres(pool) => pool,
            Backend::Sqlite { .. } => {
                return Ok(Held {
                    partitions: (0..PARTITIONS).collect(),
                    nodes: 1,
                });
            }
        };
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO outbox_nodes (node, seen_until) VALUES ($1, $2) \
             ON CONFLICT (node) DO UPDATE SET seen_until = excluded.seen_until",
        )
        .bind(node)
        .bind(Ts(until))
        .execute(&mut *tx)
        .await?;
        // Nodes gone for long are forgotten; a node counts while its word holds.
        sqlx::query("DELETE FROM outbox_nodes WHERE seen_until < $1")
            .bind(Ts(now - Duration::HOUR))
            .execute(&mut *tx)
            .await?;
        let nodes: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox_nodes WHERE seen_until > $1")
                .bind(Ts(now))
                .fetch_one(&mut *tx)
                .await?;
        let release: Vec<i32> = release.iter().map(|&p| i32::from(p)).collect();
        sqlx::query(
            "UPDATE outbox_partitions SET owner = NULL, lease_until = NULL, acquired_at = NULL \
             WHERE owner = $1 AND partition_no = ANY($2)",
        )
        .bind(node)
        .bind(&release)
        .execute(&mut *tx)
        .await?;
        let mut held: Vec<i32> = sqlx::query_scalar(
            "UPDATE outbox_partitions SET lease_until = $2 WHERE owner = $1 \
             RETURNING partition_no",
        )
        .bind(node)
        .bind(Ts(until))
        .fetch_all(&mut *tx)
        .await?;
        let share = fair_share(nodes.max(1) as u64);
        if (held.len() as u64) < share {
            // Lowest numbers first, skipping rows another node is taking right now.
            let taken: Vec<i32> = sqlx::query_scalar(
                "UPDATE outbox_partitions SET owner = $1, lease_until = $2, acquired_at = $3 \
                 WHERE partition_no IN (SELECT partition_no FROM outbox_partitions \
                   WHERE owner IS NULL OR lease_until < $3 ORDER BY partition_no LIMIT $4 \
                   FOR UPDATE SKIP LOCKED) \
                 RETURNING partition_no",
            )
            .bind(node)
            .bind(Ts(until))
            .bind(Ts(now))
            .bind((share - held.len() as u64) as i64)
            .fetch_all(&mut *tx)
            .await?;
            held.extend(taken);
        }
        tx.commit().await?;
        held.sort_unstable();
        Ok(Held {
            partitions: held.into_iter().map(|p| p as u16).collect(),
            nodes: nodes.max(1) as u64,
        })
    }

    /// Lets go of every partition `node` holds and says it has stopped: for a clean shutdown,
    /// so the others take its share at their next round instead of after its lease.
    pub async fn leave_partitions(&self, node: &str) -> Result<()> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(());
        };
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE outbox_partitions SET owner = NULL, lease_until = NULL, acquired_at = NULL \
             WHERE owner = $1",
        )
        .bind(node)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM outbox_nodes WHERE node = $1")
            .bind(node)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Tells the nodes holding `partitions` that work is due there (PostgreSQL only).
    pub async fn announce(&self, partitions: &[u16]) -> Result<()> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(());
        };
        if partitions.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(OUTBOX_CHANNEL)
            .bind(announcement(partitions))
            .execute(pool)
            .await?;
        Ok(())
    }

    /// A stream of partitions with new work, as other nodes announce them; `None` on SQLite,
    /// where no other node writes.
    pub async fn listen_outbox(&self) -> Result<Option<sqlx::postgres::PgListener>> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        Ok(Some(listener))
    }
}

/// How many partitions each of `nodes` live nodes should hold: all of them between them,
/// rounded up so no partition is left over.
pub fn fair_share(nodes: u64) -> u64 {
    u64::from(PARTITIONS).div_ceil(nodes.max(1))
}

/// The payload announcing `partitions`.
pub fn announcement(partitions: &[u16]) -> String {
    let mut s = String::with_capacity(partitions.len() * 3);
    for (i, p) in partitions.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&p.to_string());
    }
    s
}

/// The partitions an announcement names; what is not a partition number is ignored.
pub fn parse_announcement(payload: &str) -> Vec<u16> {
    payload
        .split(',')
        .filter_map(|p| p.trim().parse::<u16>().ok())
        .filter(|p| *p < PARTITIONS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_partition() {
        for nodes in 1..=70 {
            assert!(fair_share(nodes) * nodes >= u64::from(PARTITIONS));
            assert!((fair_share(nodes) - 1) * nodes < u64::from(PARTITIONS));
        }
        assert_eq!(fair_share(0), 64);
        assert_eq!(fair_share(3), 22);
    }

    #[test]
    fn announcements_round_trip() {
        assert_eq!(
            parse_announcement(&announcement(&[0, 7, 63])),
            vec![0, 7, 63]
        );
        assert_eq!(parse_announcement("1,x,64, 2"), vec![1, 2]);
        assert!(parse_announcement("").is_empty());
    }

    #[test]
    fn an_endpoint_has_one_partition_in_range() {
        for _ in 0..1000 {
            let p = partition_of(EndpointId::new());
            assert!(p < PARTITIONS);
        }
    }
}
