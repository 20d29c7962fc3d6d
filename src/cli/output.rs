//! Printing: data to stdout, as the API's JSON or as aligned text; no colours, so the output
//! reads the same in a terminal, a pipe and a log.

use std::io::{ErrorKind, Write};

use serde_json::Value;

/// Writes a line of data to stdout, at once (a follower's reader wants each line as it comes).
/// A reader that has gone, as `| head` goes, ends the command quietly, as it ends `cat`.
pub fn line(text: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` for data: see [`line`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// Prints a JSON document, pretty, on stdout.
pub fn json(value: &Value) {
    out!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A string field of a JSON object, or `-`.
pub fn field(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// Rows as text, each column padded to its widest cell (the last is not padded).
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prints a table with a header row on stdout, or `none` when there are no rows.
pub fn print_table(header: &[&str], rows: Vec<Vec<String>>, none: &str) {
    if rows.is_empty() {
        eprintln!("{none}");
        return;
    }
    let mut all = vec![header.iter().map(|h| h.to_string()).collect()];
    all.extend(rows);
    out!("{}", table(&all).trim_end());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_every_column_but_the_last() {
        let rows = vec![
            vec!["id".into(), "url".into()],
            vec!["0190abc".into(), "http://x".into()],
        ];
        assert_eq!(table(&rows), "id       url\n0190abc  http://x\n");
    }

    #[test]
    fn fields_print_absent_and_null_as_a_dash() {
        let v = json!({"a": "x", "b": null, "c": 3});
        assert_eq!(
            (
                field(&v, "a"),
                field(&v, "b"),
                field(&v, "c"),
                field(&v, "d")
            ),
            ("x".into(), "-".into(), "3".into(), "-".into())
        );
    }
}
