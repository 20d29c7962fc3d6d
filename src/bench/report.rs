//! What a delivery run measured: printed for a reader, and as one JSON line for a script
//! that runs repeats.

use std::{collections::HashMap, time::Duration};

use serde_json::{Value, json};

use super::{
    load::Call,
    receiver::Arrivals,
    window::{max_in_calendar_second, max_in_sliding_window, quantile},
};
use crate::cpu::{BENCH, POSTGRES, POSTGRES_OTHER_DATABASES};

/// Under which program the nodes' CPU is listed.
pub const NODES: &str = "freshet";

/// The figures of one run.
pub struct Outcome {
    pub accepted: u64,
    pub delivered: u64,
    pub accepted_in: Duration,
    pub delivered_in: Duration,
    /// From the client starting its API call to the receiver having the event, sorted.
    pub from_call: Vec<Duration>,
    /// From the client having the 202 to the receiver having the event, sorted (zero when
    /// the event arrived first).
    pub from_ack: Vec<Duration>,
    pub duplicates: u32,
    /// CPU seconds per program over the measured phase.
    pub cpu: Vec<(String, f64)>,
    pub peak_rss_kib: Vec<u64>,
    pub endpoints: Vec<EndpointLoad>,
}

/// What one endpoint received.
pub struct EndpointLoad {
    /// Deliveries, duplicates included.
    pub received: usize,
    /// The most deliveries in any one-second window, wherever it starts.
    pub most_in_any_second: usize,
    /// The most deliveries within one calendar second.
    pub most_in_a_calendar_second: usize,
}

impl Outcome {
    /// The latencies and per-endpoint counts from what the receiver saw and the calls made;
    /// the caller adds the timings, CPU and memory it read.
    pub fn measure(arrivals: &Arrivals, calls: &HashMap<u64, Call>) -> Self {
        let (mut from_call, mut from_ack): (Vec<Duration>, Vec<Duration>) = arrivals
            .at
            .iter()
            .filter_map(|(seq, at)| {
                let call = calls.get(seq)?;
                Some((
                    at.saturating_duration_since(call.started),
                    at.saturating_duration_since(call.acked),
                ))
            })
            .unzip();
        from_call.sort();
        from_ack.sort();
        let endpoints = (0..arrivals.per_endpoint.len())
            .map(|n| {
                let times = arrivals.wall_times(n);
                EndpointLoad {
                    received: times.len(),
                    most_in_any_second: max_in_sliding_window(&times, Duration::from_secs(1)),
                    most_in_a_calendar_second: max_in_calendar_second(&times),
                }
            })
            .collect();
        Self {
            accepted: calls.len() as u64,
            delivered: arrivals.at.len() as u64,
            accepted_in: Duration::ZERO,
            delivered_in: Duration::ZERO,
            from_call,
            from_ack,
            duplicates: arrivals.webhook_ids.values().map(|n| n - 1).sum(),
            cpu: Vec::new(),
            peak_rss_kib: Vec::new(),
            endpoints,
        }
    }

    pub fn lost(&self) -> u64 {
        self.accepted.saturating_sub(self.delivered)
    }

    pub fn events_per_second(&self) -> f64 {
        self.delivered as f64 / self.delivered_in.as_secs_f64()
    }

    /// CPU seconds `program` spent per 1,000 delivered events.
    pub fn cpu_per_1000(&self, program: &str) -> f64 {
        let spent: f64 = self
            .cpu
            .iter()
            .filter(|(name, _)| name == program)
            .map(|(_, s)| s)
            .sum();
        spent * 1000.0 / self.delivered.max(1) as f64
    }

    /// Prints the run for a reader; `rate_limit` adds each endpoint's busiest second.
    pub fn print(&self, rate_limit: Option<u32>, postgres: bool) {
        println!(
            "accepted   {} events in {:.2} s = {:.0} events/s",
            self.accepted,
            self.accepted_in.as_secs_f64(),
            self.accepted as f64 / self.accepted_in.as_secs_f64()
        );
        println!(
            "delivered  {} events in {:.2} s = {:.0} events/s end to end",
            self.delivered,
            self.delivered_in.as_secs_f64(),
            self.events_per_second()
        );
        println!(
            "latency    call start -> receiver: {}",
            percentiles(&self.from_call)
        );
        println!(
            "           (202 -> receiver:       {}; hides the API's commit)",
            percentiles(&self.from_ack)
        );
        println!("duplicates {}; lost {}", self.duplicates, self.lost());
        println!(
            "peak RSS   {} MiB per node",
            self.peak_rss_kib
                .iter()
                .map(|k| format!("{:.0}", *k as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut cpu = format!(
            "cpu/1000   s per 1,000 delivered events: nodes {:.3}",
            self.cpu_per_1000(NODES)
        );
        if postgres {
            cpu += &format!(", postgresql {:.3}", self.cpu_per_1000(POSTGRES));
        }
        cpu += &format!(", bench (load + receiver) {:.3}", self.cpu_per_1000(BENCH));
        if postgres {
            cpu += &format!(
                " [other databases' backends on the same server: {:.3}, not counted]",
                self.cpu_per_1000(POSTGRES_OTHER_DATABASES)
            );
        }
        println!("{cpu}");
        let counted: Vec<(String, f64)> = self
            .cpu
            .iter()
            .filter(|(name, _)| name != POSTGRES_OTHER_DATABASES)
            .cloned()
            .collect();
        crate::cpu::report(&counted, self.delivered, "event");
        for (n, e) in self.endpoints.iter().enumerate() {
            let mut line = format!("endpoint {n} received {}", e.received);
            if let Some(limit) = rate_limit {
                line += &format!(
                    "; most in any 1 s window {}, in a calendar second {}: {}",
                    e.most_in_any_second,
                    e.most_in_a_calendar_second,
                    if e.most_in_any_second > limit as usize {
                        format!("OVER the limit of {limit}/s")
                    } else {
                        format!("within {limit}/s")
                    }
                );
            }
            println!("{line}");
        }
    }

    /// The run as one JSON object, for the last line of the output.
    pub fn summary(
        &self,
        run: Value,
        (rate_limit, postgres): (Option<u32>, bool),
        baseline: Option<f64>,
    ) -> Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let spread = |lat: &[Duration]| {
            json!({
                "p50": ms(quantile(lat, 0.50)),
                "p99": ms(quantile(lat, 0.99)),
                "max": ms(lat.last().copied().unwrap_or_default()),
            })
        };
        let round = |x: f64| (x * 1e4).round() / 1e4;
        let per_second = rate_limit.map(|limit| {
            json!({
                "limit": limit,
                "exceeded": self.endpoints.iter().any(|e| e.most_in_any_second > limit as usize),
                "endpoints": self.endpoints.iter().map(|e| json!({
                    "received": e.received,
                    "max_in_any_1s_window": e.most_in_any_second,
                    "max_in_a_calendar_second": e.most_in_a_calendar_second,
                })).collect::<Vec<_>>(),
            })
        });
        json!({
            "run": run,
            "accepted": self.accepted,
            "delivered": self.delivered,
            "events_per_s": self.events_per_second().round(),
            "latency_ms_from_call_start": spread(&self.from_call),
            "latency_ms_from_202": spread(&self.from_ack),
            "cpu_s_per_1000_events": {
                "nodes": round(self.cpu_per_1000(NODES)),
                "postgres": postgres.then(|| round(self.cpu_per_1000(POSTGRES))),
                "postgres_other_databases": postgres
                    .then(|| round(self.cpu_per_1000(POSTGRES_OTHER_DATABASES))),
                "bench": round(self.cpu_per_1000(BENCH)),
            },
            "peak_rss_mib": self.peak_rss_kib.iter().map(|k| k / 1024).collect::<Vec<_>>(),
            "duplicates": self.duplicates,
            "lost": self.lost(),
            "max_per_second": per_second,
            "baseline_requests_per_s": baseline.map(f64::round),
        })
    }
}

fn percentiles(lat: &[Duration]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(quantile(lat, 0.50)),
        ms(quantile(lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    )
}
