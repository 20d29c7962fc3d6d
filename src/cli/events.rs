//! `freshet events tail [--follow]`: the event log, a line per event, oldest first.
//!
//! `/v1/events` lists in id order (UUIDv7, stamped when an event is made), but events become
//! visible in commit order: group commit and concurrent writers can commit an event after one
//! with a later id, and the last page carries no cursor to resume from anyway. So following
//! re-reads a look-back window behind the newest event seen, by `since`, and remembers the
//! ids it printed within that window: an event committed late is printed when it appears,
//! none twice.

use std::{collections::HashMap, time::Duration};

use clap::{Args, Subcommand};
use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use uuid::Uuid;

use super::{
    client::{Api, ApiArgs},
    error::CliError,
    output::{field, out},
    summary::summary,
};

#[derive(Subcommand)]
pub enum Command {
    /// Print events, oldest first: the latest few, or all since a time; --follow for new ones.
    Tail(Tail),
}

#[derive(Args)]
pub struct Tail {
    /// Only events of this type, e.g. refresh.completed; repeat for several.
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Every event at or after this RFC 3339 instant, e.g. 2026-11-24T12:00:00Z
    /// [default: the latest --last events].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<OffsetDateTime>,
    /// How many of the latest events to print when --since is not given.
    #[arg(long, value_name = "N", default_value_t = 10)]
    last: usize,
    /// Keep printing events as they are recorded, until Ctrl-C.
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    api: ApiArgs,
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| "must be an RFC 3339 date-time, e.g. 2026-11-24T12:00:00Z".into())
}

/// How long after being stamped an event may still become visible, and be printed.
const LOOK_BACK: time::Duration = time::Duration::seconds(60);
const POLL: Duration = Duration::from_secs(1);
/// The most events one page of `/v1/events` holds.
const MAX_PAGE: usize = freshet_model::page::MAX_LIMIT as usize;

/// An event as listed, with what ordering and deduplication need.
struct Listed {
    id: Uuid,
    created_at: OffsetDateTime,
    raw: Value,
}

impl Listed {
    fn parse(raw: Value) -> Result<Self, CliError> {
        let id = raw["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
        let created_at = raw["created_at"]
            .as_str()
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
        match (id, created_at) {
            (Some(id), Some(created_at)) => Ok(Self {
                id,
                created_at,
                raw,
            }),
            _ => Err(CliError::Unexpected(format!(
                "/v1/events listed an event without an id or time: {raw}"
            ))),
        }
    }

    fn line(&self, json: bool) -> String {
        if json {
            return self.raw.to_string();
        }
        let kind = field(&self.raw, "type");
        format!(
            "{}  {kind:<26}  {}  {}  {}",
            field(&self.raw, "created_at"),
            self.id,
            field(&self.raw, "customer_id"),
            summary(&kind, &self.raw["data"])
        )
        .trim_end()
        .to_string()
    }
}

pub async fn run(command: Command) -> Result<(), CliError> {
    let Command::Tail(t) = command;
    let api = Api::new(t.api)?;
    let log = Log {
        api: &api,
        types: &t.types,
    };
    let (floor, first) = match t.since {
        Some(since) => (Some(since), log.read(Some(since)).await?),
        // At least one event even for `--last 0`, so following starts after the newest.
        None => log.latest(t.last.max(1)).await?,
    };
    let shown = match t.since {
        Some(_) => 0,
        None => first.len().saturating_sub(t.last),
    };
    for e in &first[shown..] {
        out!("{}", e.line(api.json));
    }
    if !t.follow {
        return Ok(());
    }
    let mut tail = Follow::new(floor, &first);
    eprintln!("following new events (Ctrl-C to stop)");
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tokio::time::sleep(POLL) => {}
        }
        let batch = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            batch = log.read(tail.from()) => batch?,
        };
        for e in tail.fresh(batch) {
            out!("{}", e.line(api.json));
        }
    }
}

/// The event log, filtered by type.
struct Log<'a> {
    api: &'a Api,
    types: &'a [String],
}

impl Log<'_> {
    /// Every event at or after `since`, of the wanted types, in id order.
    async fn read(&self, since: Option<OffsetDateTime>) -> Result<Vec<Listed>, CliError> {
        let mut query = Vec::new();
        if let Some(s) = since {
            let s = s
                .format(&Rfc3339)
                .map_err(|e| CliError::Usage(format!("--since: {e}")))?;
            query.push(("since", s));
        }
        let mut events = Vec::new();
        // The API filters by one type at a time: one listing per type, merged.
        let types: Vec<Option<&String>> = if self.types.is_empty() {
            vec![None]
        } else {
            self.types.iter().map(Some).collect()
        };
        for t in types {
            let mut q = query.clone();
            if let Some(t) = t {
                q.push(("type", t.clone()));
            }
            for raw in self.api.list_all("/v1/events", &q).await? {
                events.push(Listed::parse(raw)?);
            }
        }
        events.sort_by_key(|e| e.id);
        events.dedup_by_key(|e| e.id);
        Ok(events)
    }

    /// The latest `n` events, oldest first, with the time of the oldest: where following
    /// starts reading.
    async fn latest(&self, n: usize) -> Result<(Option<OffsetDateTime>, Vec<Listed>), CliError> {
        let limit = n.clamp(1, MAX_PAGE).to_string();
        let types: Vec<Option<&String>> = if self.types.is_empty() {
            vec![None]
        } else {
            self.types.iter().map(Some).collect()
        };
        let mut events = Vec::new();
        for t in types {
            let mut q = vec![("order", "desc".to_string()), ("limit", limit.clone())];
            if let Some(t) = t {
                q.push(("type", t.clone()));
            }
            let page = self.api.get("/v1/events", &q).await?;
            for raw in page["data"].as_array().cloned().unwrap_or_default() {
                events.push(Listed::parse(raw)?);
            }
        }
        events.sort_by_key(|e| std::cmp::Reverse(e.id));
        events.truncate(n.max(1));
        events.reverse();
        Ok((events.first().map(|e| e.created_at), events))
    }
}

/// What following has seen: the events printed within the look-back window, by id, and
/// the newest time among them.
struct Follow {
    /// Nothing before this was read at the start, so nothing before it is printed later.
    floor: Option<OffsetDateTime>,
    newest: Option<OffsetDateTime>,
    seen: HashMap<Uuid, OffsetDateTime>,
}

impl Follow {
    fn new(floor: Option<OffsetDateTime>, first: &[Listed]) -> Self {
        let mut f = Self {
            floor,
            newest: None,
            seen: HashMap::new(),
        };
        f.fresh(first.iter().map(|e| Listed {
            id: e.id,
            created_at: e.created_at,
            raw: Value::Null,
        }));
        f
    }

    /// Where the next read starts: a look-back window behind the newest event seen.
    fn from(&self) -> Option<OffsetDateTime> {
        let behind = self.newest.map(|n| n - LOOK_BACK);
        match (self.floor, behind) {
            (Some(f), Some(b)) => Some(f.max(b)),
            (f, b) => f.or(b),
        }
    }

    /// The events of a read not seen before, in the read's order; remembers them, and
    /// forgets those that have fallen behind the window (no read returns them again).
    fn fresh(&mut self, batch: impl IntoIterator<Item = Listed>) -> Vec<Listed> {
        let mut fresh = Vec::new();
        for e in batch {
            if self.seen.contains_key(&e.id) {
                continue;
            }
            self.seen.insert(e.id, e.created_at);
            self.newest = self.newest.max(Some(e.created_at));
            fresh.push(e);
        }
        if let Some(from) = self.from() {
            self.seen.retain(|_, at| *at >= from);
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn event(n: u128, at: OffsetDateTime) -> Listed {
        Listed {
            id: Uuid::from_u128(n),
            created_at: at,
            raw: Value::Null,
        }
    }

    fn ids(events: &[Listed]) -> Vec<u128> {
        events.iter().map(|e| e.id.as_u128()).collect()
    }

    #[test]
    fn a_late_commit_is_printed_once_and_nothing_twice() {
        let t0 = datetime!(2026-01-01 12:00:00 UTC);
        let s = time::Duration::seconds;
        let mut f = Follow::new(None, &[event(1, t0), event(3, t0 + s(2))]);
        assert_eq!(f.from(), Some(t0 + s(2) - LOOK_BACK));
        // Event 2 was stamped before 3 but committed after the first read.
        let again = f.fresh([event(1, t0), event(2, t0 + s(1)), event(3, t0 + s(2))]);
        assert_eq!(ids(&again), [2]);
        assert!(
            f.fresh([event(2, t0 + s(1)), event(3, t0 + s(2))])
                .is_empty()
        );
        // Far later events move the window on, and the old ids are forgotten.
        assert_eq!(ids(&f.fresh([event(9, t0 + s(600))])), [9]);
        assert_eq!(f.seen.len(), 1);
        assert_eq!(f.from(), Some(t0 + s(600) - LOOK_BACK));
    }

    #[test]
    fn the_window_never_reaches_before_the_floor() {
        let t0 = datetime!(2026-01-01 12:00:00 UTC);
        let f = Follow::new(Some(t0), &[event(1, t0 + time::Duration::seconds(5))]);
        assert_eq!(f.from(), Some(t0));
        let empty = Follow::new(None, &[]);
        assert_eq!(empty.from(), None);
    }
}
