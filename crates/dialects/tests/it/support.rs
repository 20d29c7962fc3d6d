//! Fixtures and the canonical snapshots the seeds' examples are built from.

use std::path::PathBuf;

use freshet_dialects::{Context, Dialect, Rendered, render};
use freshet_model::{
    EventType,
    events::{
        CustomerSnapshot, Event, EventData, LinkSnapshot, ProviderSnapshot, SubTaskSnapshot,
        TaskStatus,
    },
};
use serde_json::Value;
use time::{OffsetDateTime, macros::datetime};

pub const WEBHOOK_ID: &str = "msg_2xH8dQmXbXh1jwWcCsvYbGJ7Ag";
pub const SENT_AT: OffsetDateTime = datetime!(2026-11-24 11:31:07 UTC);

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture as JSON.
pub fn fixture(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn event(
    id: &str,
    event_type: EventType,
    created_at: OffsetDateTime,
    data: EventData,
) -> Event {
    Event {
        id: id.to_string(),
        event_type,
        created_at,
        data,
    }
}

/// Renders and parses the body back, checking it is exactly the bytes that would be signed.
pub fn render_json(dialect: Dialect, event: &Event, ctx: &Context) -> (Value, Rendered) {
    let rendered = render(dialect, event, ctx).unwrap_or_else(|e| panic!("{dialect}: {e}"));
    let body: Value = serde_json::from_slice(&rendered.body).expect("the body is JSON");
    (body, rendered)
}

/// Equality with a readable failure: both documents in full, and the first differing path.
#[track_caller]
pub fn assert_json_eq(actual: &Value, expected: &Value, what: &str) {
    if actual != expected {
        panic!(
            "{what}: rendered body differs from the fixture at {}\n rendered: {}\n fixture:  {}",
            first_difference(actual, expected, "$"),
            serde_json::to_string_pretty(actual).unwrap(),
            serde_json::to_string_pretty(expected).unwrap(),
        );
    }
}

fn first_difference(a: &Value, b: &Value, path: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) if p == q => {}
                    (Some(p), Some(q)) => return first_difference(p, q, &format!("{path}.{k}")),
                    (Some(_), None) => return format!("{path}.{k} (only rendered)"),
                    (None, _) => return format!("{path}.{k} (only in the fixture)"),
                }
            }
            path.to_string()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find(|(_, (p, q))| p != q)
            .map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]")))
            .unwrap_or_else(|| path.to_string()),
        _ => format!("{path}: {a} vs {b}"),
    }
}

pub fn customer(id: &str) -> CustomerSnapshot {
    CustomerSnapshot {
        id: id.to_string(),
        ..Default::default()
    }
}

pub fn provider(id: &str, name: &str, code: &str, numeric_id: i64) -> ProviderSnapshot {
    ProviderSnapshot {
        id: id.to_string(),
        name: name.to_string(),
        code: code.to_string(),
        numeric_id,
    }
}

pub fn link(id: &str, number: i64, created_at: OffsetDateTime) -> LinkSnapshot {
    LinkSnapshot {
        id: id.to_string(),
        number,
        created_at,
    }
}

/// A sub-task with nothing found yet; tests fill in what their seed shows.
pub fn sub_task(task_id: &str, provider: ProviderSnapshot, link: LinkSnapshot) -> SubTaskSnapshot {
    SubTaskSnapshot {
        task_id: task_id.to_string(),
        provider,
        link,
        status: TaskStatus::Running,
        result: None,
        reconnect_required: false,
        has_new_transactions: false,
        account_ids: Vec::new(),
        consent_ids: Vec::new(),
        consent_details: None,
        request_id: String::new(),
        last_updated: None,
        last_update_attempt: None,
    }
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
