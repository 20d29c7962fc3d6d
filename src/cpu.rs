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

/// CPU seconds per program at one instant.
#[derive(Clone, Debug, Default)]
pub struct CpuSample(BTreeMap<String, f64>);

impl Watched {
    /// Reads every watched program's CPU time now. PostgreSQL is the sum of every process
    /// named `postgres` (the server and its backends) on this machine.
    pub fn sample(&self) -> CpuSample {
        let mut by = BTreeMap::new();
        for (name, pid) in &self.children {
            *by.entry(name.clone()).or_default() += process_seconds(&pid.to_string());
        }
        by.insert("bench (load + receiver)".into(), process_seconds("self"));
        let postgres: f64 = std::fs::read_dir("/proc")
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
            .map(|pid| process_seconds(&pid))
            .sum();
        if postgres > 0.0 {
            by.insert("postgresql".into(), postgres);
        }
        CpuSample(by)
    }
}

impl CpuSample {
    /// What each program spent between `before` and `self`, and in all, as a table row set.
    pub fn since(&self, before: &CpuSample) -> Vec<(String, f64)> {
        let mut spent: Vec<(String, f64)> = self
            .0
            .iter()
            .map(|(name, now)| {
                let then = before.0.get(name).copied().unwrap_or(0.0);
                (name.clone(), (now - then).max(0.0))
            })
            .collect();
        let total = spent.iter().map(|(_, s)| s).sum();
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
        let before = CpuSample(BTreeMap::from([("a".into(), 1.0), ("b".into(), 2.0)]));
        let after = CpuSample(BTreeMap::from([("a".into(), 1.5), ("b".into(), 4.0)]));
        assert_eq!(
            after.since(&before),
            vec![("a".into(), 0.5), ("b".into(), 2.0), ("all".into(), 2.5)]
        );
    }
}
