//! A small metrics registry and the Prometheus text format (version 0.0.4) it renders to.
//!
//! Counters and histograms are atomics, updated where the work happens; a family keeps its
//! series by label values in a sorted map, so rendering is stable from one scrape to the next.
//! Hot paths hold an `Arc` to their series and never touch the map. Hand-written rather than a
//! metrics crate: it is this file, and it keeps those crates out of the build.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Observations sorted into buckets by upper bound, with their sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative: index `i` counts values in `(bounds[i-1], bounds[i]]`; the
    /// last counts values above every bound.
    buckets: Box<[AtomicU64]>,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds, which must increase.
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Cumulative counts per bound, then the total (the `+Inf` bucket, and the count).
    fn cumulative(&self) -> (Vec<u64>, u64) {
        let mut total = 0;
        let mut upto = Vec::with_capacity(self.bounds.len());
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            if i < self.bounds.len() {
                upto.push(total);
            }
        }
        (upto, total)
    }
}

/// Series of one metric, by the values of its labels.
pub struct Family<M> {
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, Arc<M>>>,
    new_series: Box<dyn Fn() -> M + Send + Sync>,
}

impl<M> Family<M> {
    pub fn new(
        labels: &'static [&'static str],
        new_series: impl Fn() -> M + Send + Sync + 'static,
    ) -> Self {
        Self {
            labels,
            series: Mutex::default(),
            new_series: Box::new(new_series),
        }
    }

    /// The series for these label values (in the family's label order), created at zero.
    pub fn with(&self, values: &[&str]) -> Arc<M> {
        debug_assert_eq!(values.len(), self.labels.len());
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series
            .entry(key)
            .or_insert_with(|| Arc::new((self.new_series)()))
            .clone()
    }

    fn snapshot(&self) -> Vec<(Vec<String>, Arc<M>)> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn pairs<'a>(&'a self, values: &'a [String]) -> Vec<(&'a str, &'a str)> {
        self.labels
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .collect()
    }
}

impl Family<Counter> {
    pub fn counters(labels: &'static [&'static str]) -> Self {
        Self::new(labels, Counter::default)
    }

    pub fn render(&self, out: &mut Exposition, name: &str, help: &str) {
        out.header(name, help, "counter");
        for (values, c) in self.snapshot() {
            out.sample(name, &self.pairs(&values), c.get() as f64);
        }
    }
}

impl Family<Histogram> {
    pub fn histograms(labels: &'static [&'static str], bounds: &'static [f64]) -> Self {
        Self::new(labels, move || Histogram::new(bounds))
    }

    pub fn render(&self, out: &mut Exposition, name: &str, help: &str) {
        out.header(name, help, "histogram");
        for (values, h) in self.snapshot() {
            let mut labels = self.pairs(&values);
            out.histogram(name, &mut labels, &h);
        }
    }
}

/// A text exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// `# HELP` and `# TYPE` of a family; its samples follow.
    pub fn header(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// A family of one gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, "gauge");
        self.sample(name, &[], value);
    }

    fn histogram<'a>(&mut self, name: &str, labels: &mut Vec<(&'a str, &'a str)>, h: &Histogram) {
        let (upto, total) = h.cumulative();
        let bucket = format!("{name}_bucket");
        for (bound, n) in h.bounds.iter().zip(upto) {
            let le = number(*bound);
            let mut with_le = labels.clone();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, n as f64);
        }
        labels.push(("le", "+Inf"));
        self.sample(&bucket, labels, total as f64);
        labels.pop();
        self.sample(
            &format!("{name}_sum"),
            labels,
            f64::from_bits(h.sum.load(Ordering::Relaxed)),
        );
        self.sample(&format!("{name}_count"), labels, total as f64);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// A label value with `\`, `"` and line feeds escaped, as the format requires.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: integers without a fraction, infinities as the format spells them.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.5, 1.0];

    #[test]
    fn counters_render_with_help_type_and_sorted_series() {
        let f = Family::counters(&["dialect", "outcome"]);
        f.with(&["yodlee", "success"]).add(3);
        f.with(&["bud", "timeout"]).inc();
        f.with(&["bud", "success"]);
        let mut out = Exposition::default();
        f.render(&mut out, "x_total", "Attempts.");
        assert_eq!(
            out.finish(),
            "# HELP x_total Attempts.\n# TYPE x_total counter\n\
             x_total{dialect=\"bud\",outcome=\"success\"} 0\n\
             x_total{dialect=\"bud\",outcome=\"timeout\"} 1\n\
             x_total{dialect=\"yodlee\",outcome=\"success\"} 3\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let f = Family::counters(&["provider"]);
        f.with(&["a\"b\\c\nd"]).inc();
        let mut out = Exposition::default();
        f.render(&mut out, "y_total", "Two\nlines \\ here.");
        assert_eq!(
            out.finish(),
            "# HELP y_total Two\\nlines \\\\ here.\n# TYPE y_total counter\n\
             y_total{provider=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_is_the_count() {
        let f = Family::histograms(&["dialect"], BOUNDS);
        let h = f.with(&["standard"]);
        // Exact binary fractions, so the sum is exact; 0.5 sits on a bound, which includes it.
        for v in [0.0009765625, 0.5, 0.25, 0.75, 3.0] {
            h.observe(v);
        }
        let mut out = Exposition::default();
        f.render(&mut out, "d_seconds", "Durations.");
        assert_eq!(
            out.finish(),
            "# HELP d_seconds Durations.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{dialect=\"standard\",le=\"0.001\"} 1\n\
             d_seconds_bucket{dialect=\"standard\",le=\"0.5\"} 3\n\
             d_seconds_bucket{dialect=\"standard\",le=\"1\"} 4\n\
             d_seconds_bucket{dialect=\"standard\",le=\"+Inf\"} 5\n\
             d_seconds_sum{dialect=\"standard\"} 4.5009765625\n\
             d_seconds_count{dialect=\"standard\"} 5\n"
        );
    }

    #[test]
    fn an_empty_histogram_renders_zeros() {
        let f = Family::histograms(&[], BOUNDS);
        f.with(&[]);
        let mut out = Exposition::default();
        f.render(&mut out, "e_seconds", "Empty.");
        let text = out.finish();
        assert!(text.contains("e_seconds_bucket{le=\"+Inf\"} 0\n"), "{text}");
        assert!(
            text.contains("e_seconds_sum 0\ne_seconds_count 0\n"),
            "{text}"
        );
    }

    #[test]
    fn gauges_and_special_numbers() {
        let mut out = Exposition::default();
        out.gauge("g", "A gauge.", 2.5);
        out.sample("h", &[], f64::INFINITY);
        out.sample("h", &[], f64::NAN);
        assert_eq!(
            out.finish(),
            "# HELP g A gauge.\n# TYPE g gauge\ng 2.5\nh +Inf\nh NaN\n"
        );
    }
}
