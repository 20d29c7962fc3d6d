//! What a node counts as it works, for `/metrics`.
//!
//! [`Metrics`] is this node's counters and histograms, updated by the dispatcher, the refresh
//! runner and the event writers as work finishes; a fleet's totals are the sum over its nodes,
//! as Prometheus adds them up. Facts that live in the shared database (the queue, the
//! unattended budget) are not counted here but read when scraped, by the [`Exporter`].

mod exporter;
pub mod exposition;

use std::{sync::Arc, time::Duration};

use freshet_dialects::Dialect;
use freshet_model::{EventType, ResultCode};

pub use exporter::Exporter;
use exposition::{Counter, Exposition, Family, Histogram};

use crate::delivery::sender::AttemptOutcome;

/// Attempt latency buckets, in seconds: 1 ms to the longest delivery timeout worth having.
const ATTEMPT_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
];

/// Sub-task duration buckets, in seconds: a quick bank to a slow first import.
const SUBTASK_BOUNDS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// One dialect's delivery series, held so an attempt counts without a lookup.
struct DialectSeries {
    dialect: String,
    attempts: Vec<Arc<Counter>>,
    dead: Arc<Counter>,
    duration: Arc<Histogram>,
}

/// A node's in-process metrics; shared through an `Arc`.
pub struct Metrics {
    attempts: Family<Counter>,
    dead: Family<Counter>,
    attempt_duration: Family<Histogram>,
    dialects: Vec<DialectSeries>,
    subtasks: Family<Counter>,
    subtask_duration: Family<Histogram>,
    events: Family<Counter>,
    http: Family<Counter>,
    purged: Family<Counter>,
    /// Outbox partitions this node holds, and the nodes sharing them, at the last round.
    partitions: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64),
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series of a closed label set starts at zero, so `rate()` sees its first increase.
    pub fn new() -> Self {
        let mut m = Self {
            attempts: Family::counters(&["dialect", "outcome"]),
            dead: Family::counters(&["dialect"]),
            attempt_duration: Family::histograms(&["dialect"], ATTEMPT_BOUNDS),
            dialects: Vec::new(),
            subtasks: Family::counters(&["provider", "result"]),
            subtask_duration: Family::histograms(&["provider"], SUBTASK_BOUNDS),
            events: Family::counters(&["type"]),
            http: Family::counters(&["class"]),
            purged: Family::counters(&["table"]),
            partitions: Default::default(),
        };
        for (table, _) in freshet_store::Purged::default().by_table() {
            m.purged.with(&[table]);
        }
        let names = Dialect::ALL
            .iter()
            .map(|d| d.name())
            .chain([freshet_store::CALLBACK_DIALECT]);
        m.dialects = names.map(|d| m.dialect_series(d)).collect();
        for t in EventType::ALL {
            m.events.with(&[t.as_str()]);
        }
        for class in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            m.http.with(&[class]);
        }
        m
    }

    fn dialect_series(&self, dialect: &str) -> DialectSeries {
        DialectSeries {
            dialect: dialect.to_string(),
            attempts: AttemptOutcome::ALL
                .iter()
                .map(|o| self.attempts.with(&[dialect, o.as_str()]))
                .collect(),
            dead: self.dead.with(&[dialect]),
            duration: self.attempt_duration.with(&[dialect]),
        }
    }

    /// Starts the refresh series of these providers at zero.
    pub fn know_providers<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            for r in ResultCode::ALL {
                self.subtasks.with(&[id, r.as_str()]);
            }
            self.subtask_duration.with(&[id]);
        }
    }

    /// Counts a delivery attempt; `dead` when it was the delivery's last.
    pub fn delivery_attempted(
        &self,
        dialect: &str,
        outcome: AttemptOutcome,
        latency: Duration,
        dead: bool,
    ) {
        let index = AttemptOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("every outcome is in ALL");
        let observe = |attempts: &Counter, dead_counter: &Counter, duration: &Histogram| {
            attempts.inc();
            if dead {
                dead_counter.inc();
            }
            if outcome.reached_network() {
                duration.observe_duration(latency);
            }
        };
        match self.dialects.iter().find(|s| s.dialect == dialect) {
            Some(s) => observe(&s.attempts[index], &s.dead, &s.duration),
            // Only a dialect this build does not know (a row written by a newer node).
            None => observe(
                &self.attempts.with(&[dialect, outcome.as_str()]),
                &self.dead.with(&[dialect]),
                &self.attempt_duration.with(&[dialect]),
            ),
        }
    }

    /// Counts a refresh sub-task that ended with `result`, having run for `duration`.
    pub fn subtask_ended(&self, provider: &str, result: ResultCode, duration: Option<Duration>) {
        self.subtasks.with(&[provider, result.as_str()]).inc();
        if let Some(d) = duration {
            self.subtask_duration.with(&[provider]).observe_duration(d);
        }
    }

    /// Counts events written to the event log.
    pub fn events_recorded(&self, types: impl IntoIterator<Item = EventType>) {
        for t in types {
            self.events.with(&[t.as_str()]).inc();
        }
    }

    /// Counts a response of the API.
    pub fn http_response(&self, status: u16) {
        let class = match status {
            100..200 => "1xx",
            200..300 => "2xx",
            300..400 => "3xx",
            400..500 => "4xx",
            _ => "5xx",
        };
        self.http.with(&[class]).inc();
    }

    /// Counts rows the retention task removed, per table.
    pub fn rows_purged(&self, purged: &freshet_store::Purged) {
        for (table, n) in purged.by_table() {
            if n > 0 {
                self.purged.with(&[table]).add(n);
            }
        }
    }

    /// Writes the in-process families.
    fn render_deliveries(&self, out: &mut Exposition) {
        self.attempts.render(
            out,
            "freshet_delivery_attempts_total",
            "Webhook delivery attempts by endpoint dialect and outcome.",
        );
        self.dead.render(
            out,
            "freshet_deliveries_dead_total",
            "Deliveries that failed their last attempt and will not be retried.",
        );
        self.attempt_duration.render(
            out,
            "freshet_delivery_attempt_duration_seconds",
            "Time from sending a webhook to its response, for attempts that went out.",
        );
    }

    fn render_refresh(&self, out: &mut Exposition) {
        self.subtasks.render(
            out,
            "freshet_refresh_subtasks_total",
            "Refresh sub-tasks (one bank of a refresh) ended by this node, by provider and result code.",
        );
        self.subtask_duration.render(
            out,
            "freshet_refresh_subtask_duration_seconds",
            "Time from a sub-task's first claim to its end, retried attempts included.",
        );
    }

    /// Notes a round of holding outbox partitions: how many this node holds, among how many
    /// nodes.
    pub fn partitions_held(&self, (held, nodes): (usize, u64)) {
        use std::sync::atomic::Ordering::Relaxed;
        self.partitions.0.store(held as u64, Relaxed);
        self.partitions.1.store(nodes, Relaxed);
    }

    fn render_other(&self, out: &mut Exposition) {
        use std::sync::atomic::Ordering::Relaxed;
        out.gauge(
            "freshet_outbox_partitions_held",
            "Outbox partitions this node holds and claims from (all 64 on SQLite's single node).",
            self.partitions.0.load(Relaxed) as f64,
        );
        out.gauge(
            "freshet_outbox_nodes",
            "Nodes sharing the outbox, as this node saw at its last round.",
            self.partitions.1.load(Relaxed) as f64,
        );
        self.events.render(
            out,
            "freshet_events_recorded_total",
            "Events written to the event log by this node, by type.",
        );
        self.http.render(
            out,
            "freshet_http_requests_total",
            "Responses of this node's HTTP API, by status class.",
        );
        self.purged.render(
            out,
            "freshet_retention_purged_rows_total",
            "Rows this node's retention task removed because they outlived the retention period, by table.",
        );
    }
}
