//! CPU time spent by each program a benchmark runs, read from /proc.
//!
//! On a shared two-core machine wall time says how long a run took but not who spent it;
//! CPU seconds per program do, and they hold steadier from run to run than wall time when
//! something else is running. Linux reports process times in ticks of 1/100 s (USER_HZ).

use std::collections::BTreeMap;

const TICKS_PER_SECOND: f64 = 100.0;

/// The programs a benchmark watches: its children by pid, itself, and PostgreSQL.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    pub children: Vec<(String, u32)>,
}

/// CPU seconds per process at one instant, each under the program it belongs to.
#[derive(Clone, Debug, Default)]
pub struct CpuSample(BTreeMap<(String, String), f64>);

impl Watched {
    /// Reads every watched program's CPU time now. PostgreSQL is the sum of every process
    /// named `postgres` (the server and its backends) on this machine.
    pub fn sample(&self) -> CpuSample {
        let mut by = BTreeMap::new();
        for (name, pid) in &self.children {
            by.insert(
                (name.clone(), pid.to_string()),
                process_seconds(&pid.to_string()),
            );
        }
        by.insert(
            ("bench (load + receiver)".into(), "self".into()),
            process_seconds("self"),
        );
        // Per process, so that backends ending between two samples do not count against
        // those that started.
        let backends = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let pid = e.file_name().into_string().ok()?;
                pid.bytes().all(|b| b.is_ascii_digit()).then_some(pid)
            })
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim_end() == "postgres")
            })
            .map(|pid| {
                let spent = process_seconds(&pid);
                (("postgresql".to_string(), pid), spent)
            });
        by.extend(backends);
        CpuSample(by)
    }
}

impl CpuSample {
    /// What each program spent between `before` and `self`, and in all, as a table row set.
    pub fn since(&self, before: &CpuSample) -> Vec<(String, f64)> {
        let mut by: BTreeMap<String, f64> = BTreeMap::new();
        for (key, now) in &self.0 {
            let then = before.0.get(key).copied().unwrap_or(0.0);
            *by.entry(key.0.clone()).or_default() += (now - then).max(0.0);
        }
        let total = by.values().sum();
        let mut spent: Vec<(String, f64)> = by.into_iter().collect();
        spent.push(("all".into(), total));
        spent
    }
}

/// Prints CPU seconds per program and per unit of work (`per` names the unit).
pub fn report(spent: &[(String, f64)], units: u64, per: &str) {
    let line: Vec<String> = spent
        .iter()
        .map(|(name, s)| {
            format!(
                "{name} {s:.1} s ({:.2} ms/{per})",
                s * 1000.0 / units.max(1) as f64
            )
        })
        .collect();
    println!("cpu        {}", line.join(", "));
}

/// User plus system time of `/proc/<pid>`, in seconds; 0 when it has gone.
fn process_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Counting from the state (field 3 of the line), utime and stime are fields 14 and 15.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / TICKS_PER_SECOND,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_spent_some_cpu() {
        let mut spin = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(process_seconds("self") > 0.0);
        assert_eq!(process_seconds("999999999"), 0.0);
    }

    #[test]
    fn differences_are_per_program_with_a_total() {
        let key = |name: &str, pid: &str| (name.to_string(), pid.to_string());
        let before = CpuSample(BTreeMap::from([
            (key("a", "1"), 1.0),
            (key("b", "2"), 2.0),
            (key("b", "3"), 9.0),
        ]));
        // b/3 ended, b/4 started: b spent 2 s in its old process and 1 s in its new one.
        let after = CpuSample(BTreeMap::from([
            (key("a", "1"), 1.5),
            (key("b", "2"), 4.0),
            (key("b", "4"), 1.0),
        ]));
        assert_eq!(
            after.since(&before),
            vec![("a".into(), 0.5), ("b".into(), 3.0), ("all".into(), 3.5)]
        );
    }
}
