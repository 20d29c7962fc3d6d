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

/// Which PostgreSQL processes a sample reads.
#[derive(Clone, Copy, Debug)]
pub enum Postgres<'a> {
    /// None: the store is not PostgreSQL, and a server on this machine would be someone else's.
    Skip,
    /// Every process named `postgres`, as one program.
    All,
    /// Every process named `postgres`, with the backends serving other databases than this
    /// one apart: on a shared machine others' tests run on the same server.
    Database(&'a str),
}

/// Under which program PostgreSQL's share of a sample is listed.
pub const POSTGRES: &str = "postgresql";
/// Under which program the backends of other databases are listed (with [`Postgres::Database`]).
pub const POSTGRES_OTHER_DATABASES: &str = "postgresql, other databases' backends";
/// Under which program the benchmark's own process is listed.
pub const BENCH: &str = "bench (load + receiver)";

impl Watched {
    /// Reads every watched program's CPU time now. PostgreSQL is the sum of every process
    /// named `postgres` (the server and its backends) on this machine.
    pub fn sample(&self) -> CpuSample {
        self.sample_with(Postgres::All)
    }

    /// Reads every watched program's CPU time now, and PostgreSQL's as `postgres` says.
    /// A backend that starts between two samples counts from zero; one that exits between
    /// them is missed (its time goes with it).
    pub fn sample_with(&self, postgres: Postgres) -> CpuSample {
        let mut by = BTreeMap::new();
        for (name, pid) in &self.children {
            by.insert(
                (name.clone(), pid.to_string()),
                process_seconds(&pid.to_string()),
            );
        }
        by.insert((BENCH.into(), "self".into()), process_seconds("self"));
        if matches!(postgres, Postgres::Skip) {
            return CpuSample(by);
        }
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
                let program = match postgres {
                    Postgres::Database(ours) => {
                        let title = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                            .unwrap_or_default();
                        match backend_database(&title) {
                            Some(db) if db != ours => POSTGRES_OTHER_DATABASES,
                            _ => POSTGRES,
                        }
                    }
                    _ => POSTGRES,
                };
                ((program.to_string(), pid), spent)
            });
        by.extend(backends);
        CpuSample(by)
    }
}

/// The database a PostgreSQL backend serves, from its process title
/// (`postgres: [cluster: ]user database host(port) state`); `None` for the server's own
/// processes (checkpointer, WAL writer, …), whose work is shared by every database.
fn backend_database(title: &str) -> Option<&str> {
    let words: Vec<&str> = title
        .trim_end_matches(['\0', ' '])
        .split(|c: char| c == '\0' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    // The client's address is the word after the database: `127.0.0.1(54321)` or `[local]`.
    let client = words
        .iter()
        .position(|w| *w == "[local]" || (w.ends_with(')') && w.contains('(')))?;
    // `postgres:` and the user come before the database.
    (client >= 3).then(|| words[client - 1])
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
    fn a_backend_title_names_its_database() {
        let with_cluster = "postgres: 15/main: postgres freshet_bench 127.0.0.1(54012) idle\0";
        assert_eq!(backend_database(with_cluster), Some("freshet_bench"));
        let plain = "postgres: root test [local] SELECT";
        assert_eq!(backend_database(plain), Some("test"));
        assert_eq!(backend_database("postgres: 15/main: checkpointer "), None);
        assert_eq!(
            backend_database("/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib/postgresql"),
            None
        );
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
