//! The scrape: this node's metrics, the database facts every node shares, and the process.
//!
//! The database facts cost a query each, so they are read at most once per `ttl`, however
//! often and however many scrapers ask; concurrent scrapes wait for the one read in progress.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use freshet_banks::Provider;
use freshet_store::{QueueStats, Store, StoreError, UnattendedUse};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::{Metrics, exposition::Exposition};

/// What the database said, and when.
#[derive(Clone, Debug)]
struct Facts {
    read_at: OffsetDateTime,
    queue: QueueStats,
    unattended: Vec<UnattendedUse>,
    /// When the oldest event kept was created: how far back retention lets the log reach.
    oldest_event: Option<OffsetDateTime>,
}

/// Renders `/metrics`.
pub struct Exporter {
    metrics: Arc<Metrics>,
    store: Store,
    /// Each provider's unattended refreshes per consent and day.
    budgets: Vec<(String, u32)>,
    ttl: Duration,
    cache: Mutex<Option<(Instant, Facts)>>,
}

impl Exporter {
    /// An exporter of `metrics`, reading the shared facts from `store` at most once per `ttl`.
    pub fn new<'a>(
        metrics: Arc<Metrics>,
        store: Store,
        providers: impl IntoIterator<Item = &'a Provider>,
        ttl: Duration,
    ) -> Self {
        Self {
            metrics,
            store,
            budgets: providers
                .into_iter()
                .map(|p| (p.id.clone(), p.unattended_per_day))
                .collect(),
            ttl,
            cache: Mutex::new(None),
        }
    }

    /// The exposition. When the database cannot be read, the in-process metrics still are,
    /// with `freshet_metrics_store_up` 0 and no database facts.
    pub async fn render(&self) -> String {
        let facts = self.facts().await;
        let mut out = Exposition::default();
        out.header(
            "freshet_build_info",
            "This node's freshet version; always 1.",
            "gauge",
        );
        out.sample(
            "freshet_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        self.metrics.render_deliveries(&mut out);
        if let Ok(f) = &facts {
            render_queue(&mut out, f);
        }
        self.metrics.render_refresh(&mut out);
        if let Ok(f) = &facts {
            self.render_budgets(&mut out, &f.unattended);
        }
        self.metrics.render_other(&mut out);
        out.gauge(
            "freshet_metrics_store_up",
            "1 when this scrape could read the database facts (queue, budget), 0 when not.",
            if facts.is_ok() { 1.0 } else { 0.0 },
        );
        if let Some(bytes) = resident_memory_bytes() {
            out.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                bytes as f64,
            );
        }
        out.finish()
    }

    async fn facts(&self) -> Result<Facts, StoreError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, facts)) = cache.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(facts.clone());
        }
        let read_at = freshet_model::time::now();
        let read = async {
            Ok::<_, StoreError>(Facts {
                read_at,
                queue: self.store.queue_stats().await?,
                unattended: self.store.unattended_use(read_at.date()).await?,
                oldest_event: self.store.oldest_event_at().await?,
            })
        }
        .await;
        match read {
            Ok(facts) => {
                *cache = Some((Instant::now(), facts.clone()));
                Ok(facts)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: reading the database facts failed");
                Err(e)
            }
        }
    }

    fn render_budgets(&self, out: &mut Exposition, used: &[UnattendedUse]) {
        fn of<'a>(
            used: &'a [UnattendedUse],
            id: &'a str,
        ) -> impl Iterator<Item = &'a UnattendedUse> {
            used.iter().filter(move |u| u.provider_id == id)
        }
        out.header(
            "freshet_unattended_budget_left",
            "Unattended refreshes left today (UTC) for the provider's authorised consent with the fewest left.",
            "gauge",
        );
        for (id, per_day) in &self.budgets {
            let most = of(used, id).map(|u| u.used).max().unwrap_or(0);
            out.sample(
                "freshet_unattended_budget_left",
                &[("provider", id)],
                f64::from(per_day.saturating_sub(most)),
            );
        }
        out.header(
            "freshet_unattended_budget_exhausted_consents",
            "Authorised consents of the provider with no unattended refresh left today (UTC).",
            "gauge",
        );
        for (id, per_day) in &self.budgets {
            let spent: u64 = of(used, id)
                .filter(|u| u.used >= *per_day)
                .map(|u| u.consents)
                .sum();
            out.sample(
                "freshet_unattended_budget_exhausted_consents",
                &[("provider", id)],
                spent as f64,
            );
        }
    }
}

fn render_queue(out: &mut Exposition, f: &Facts) {
    out.gauge(
        "freshet_delivery_queue_depth",
        "Unsettled deliveries to enabled endpoints: waiting, retrying later or in flight.",
        f.queue.depth as f64,
    );
    let age = f
        .queue
        .oldest_due
        .map_or(0.0, |due| (f.read_at - due).as_seconds_f64().max(0.0));
    out.gauge(
        "freshet_delivery_oldest_pending_age_seconds",
        "How long the most overdue unsettled delivery to an enabled endpoint has been due; 0 when none is.",
        age,
    );
    out.gauge(
        "freshet_deliveries_parked",
        "Unsettled deliveries to disabled endpoints, waiting for the endpoint to be enabled.",
        f.queue.parked as f64,
    );
    out.gauge(
        "freshet_deliveries_waiting_for_limits",
        "Deliveries due to endpoints with a rate_limit or max_in_flight and not yet sent: what the limits hold back in the outbox.",
        f.queue.waiting_for_limits as f64,
    );
    out.gauge(
        "freshet_retention_oldest_event_age_seconds",
        "Age of the oldest event kept; retention keeps it near the retention period. 0 when there is none.",
        f.oldest_event
            .map_or(0.0, |at| (f.read_at - at).as_seconds_f64().max(0.0)),
    );
}

/// The resident set size from `/proc/self/status`; `None` where there is no procfs. Not
/// `statm`: it counts pages, and reading the page size would take libc.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
