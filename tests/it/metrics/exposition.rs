//! A strict reader of the Prometheus text format (0.0.4), written from the format's grammar
//! rather than from freshet's renderer, so a scrape that Prometheus would refuse fails here.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed and checked exposition.
#[derive(Debug)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Family name to its type.
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses `text` and checks it as a whole; panics naming the first fault.
    pub fn parse(text: &str) -> Self {
        assert!(text.ends_with('\n'), "an exposition ends with a line feed");
        let mut types = BTreeMap::new();
        let mut helped = BTreeMap::new();
        let mut samples = Vec::new();
        let mut families_seen: Vec<String> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = || format!("line {}: {line:?}", n + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, _help) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(metric_name(name), "{}", at());
                assert!(
                    helped.insert(name.to_string(), ()).is_none(),
                    "HELP twice: {}",
                    at()
                );
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(metric_name(name), "{}", at());
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{}",
                    at()
                );
                assert!(helped.contains_key(name), "TYPE before HELP: {}", at());
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "TYPE twice: {}",
                    at()
                );
            } else {
                assert!(!line.starts_with('#') && !line.is_empty(), "{}", at());
                let sample = sample(line).unwrap_or_else(|why| panic!("{why}: {}", at()));
                let family = family_of(&sample.name, &types)
                    .unwrap_or_else(|| panic!("a sample without # TYPE: {}", at()));
                if families_seen.last() != Some(&family) {
                    assert!(
                        !families_seen.contains(&family),
                        "family {family} is split: {}",
                        at()
                    );
                    families_seen.push(family);
                }
                samples.push(sample);
            }
        }
        let scrape = Self { samples, types };
        scrape.check_histograms();
        scrape
    }

    /// The value of the sample named `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one sample {name}{labels:?}, found {found:?}"
        );
        found[0].value
    }

    /// Every histogram series: buckets by increasing `le`, counts that never fall, `+Inf`
    /// last and equal to `_count`, and a `_sum`.
    fn check_histograms(&self) {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let mut labels = s.labels.clone();
                let le = labels
                    .remove("le")
                    .unwrap_or_else(|| panic!("a bucket without le: {s:?}"));
                let bound = parse_value(&le).unwrap_or_else(|| panic!("le {le:?}"));
                series.entry(labels).or_default().push((bound, s.value));
            }
            for (labels, buckets) in series {
                assert!(
                    buckets
                        .windows(2)
                        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                    "{family}{labels:?}: buckets must grow: {buckets:?}"
                );
                let (last, total) = *buckets.last().unwrap();
                assert_eq!(
                    last,
                    f64::INFINITY,
                    "{family}{labels:?}: the last bucket is +Inf"
                );
                let pairs: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                assert_eq!(
                    self.value(&format!("{family}_count"), &pairs),
                    total,
                    "{family}{labels:?}"
                );
                self.value(&format!("{family}_sum"), &pairs);
            }
        }
    }
}

/// The family a sample belongs to: its own name, or a histogram's without the suffix.
fn family_of(name: &str, types: &BTreeMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_string());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        (types.get(base)? == "histogram").then(|| base.to_string())
    })
}

fn metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `name{label="value",...} value [timestamp]`
fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut s) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = s.split_once("=\"").ok_or("a label is name=\"value\"")?;
            if !label_name(key) {
                return Err(format!("bad label name {key:?}"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                let (i, c) = chars.next().ok_or("unterminated label value")?;
                match c {
                    '"' => break i + 1,
                    '\\' => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    c => value.push(c),
                }
            };
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            s = &after[end..];
            if let Some(next) = s.strip_prefix(',') {
                s = next;
            } else if !s.starts_with('}') {
                return Err("labels are separated by commas".into());
            }
        }
    }
    let mut parts = rest
        .strip_prefix(' ')
        .ok_or("a space before the value")?
        .split(' ');
    let value = parts.next().and_then(parse_value).ok_or("a bad value")?;
    if let Some(ts) = parts.next()
        && ts.parse::<i64>().is_err()
    {
        return Err("a bad timestamp".into());
    }
    if parts.next().is_some() {
        return Err("trailing text".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}
