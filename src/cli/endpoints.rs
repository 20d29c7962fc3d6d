//! `freshet endpoints create | list | test | replay`: where an application's webhooks go.

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::{
    client::{Api, ApiArgs},
    error::CliError,
    output::{self, field, out},
};

#[derive(Subcommand)]
pub enum Command {
    /// Create a webhook endpoint; prints its id and signing secret.
    Create(Create),
    /// List the application's endpoints, oldest first.
    List(List),
    /// Send an `endpoint.test` event to one endpoint.
    Test(Test),
    /// Send an endpoint's events of a time range again.
    Replay(Replay),
}

#[derive(Args)]
pub struct Create {
    /// Where deliveries go: http or https. (Positional, since `--url` names the node.)
    #[arg(value_name = "URL")]
    target: String,
    /// The wire format: standard, bud, tatra, klavi or yodlee [default: standard].
    #[arg(long)]
    dialect: Option<String>,
    /// An event type to receive; repeat for several [default: every type the dialect sends].
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,
    /// For people reading the list.
    #[arg(long)]
    description: Option<String>,
    /// Sent verbatim as the `Authorization` header of every delivery.
    #[arg(long, value_name = "VALUE")]
    security_header: Option<String>,
    /// Klavi's `partnerAppId` [default: the application's id].
    #[arg(long, value_name = "ID")]
    partner_app_id: Option<String>,
    /// When deliveries start: `immediate`, or `next_hour` (Tatra banka's rule and the
    /// tatra dialect's default) [default: the dialect's].
    #[arg(long, value_name = "WHEN")]
    activation: Option<String>,
    /// Also receive the refreshes nobody asked for (the scheduler's, a bank's notification)
    /// where the dialect reports only requested ones: bud, tatra, yodlee (docs/dialects.md).
    #[arg(long)]
    scheduled_refreshes: bool,
    /// Deliveries per second at most, whichever node sends; more wait in the outbox.
    #[arg(long, value_name = "N")]
    rate_limit: Option<i64>,
    /// Deliveries awaiting this receiver's answer at once, at most.
    #[arg(long, value_name = "N")]
    max_in_flight: Option<i64>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct List {
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct Test {
    /// The endpoint's id.
    id: String,
    /// JSON carried inside the event, e.g. '{"hello": "world"}'.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    data: Option<Value>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct Replay {
    /// The endpoint's id.
    id: String,
    /// RFC 3339: events at or after this instant, e.g. 2026-11-24T12:00:00Z.
    #[arg(long, value_name = "TIME")]
    since: String,
    /// RFC 3339: events before this instant [default: now].
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

pub async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Create(c) => create(c).await,
        Command::List(l) => list(l).await,
        Command::Test(t) => test(t).await,
        Command::Replay(r) => replay(r).await,
    }
}

/// The request body: only what was given, so the API's defaults apply to the rest.
fn create_body(c: &Create) -> Value {
    let mut body = Map::new();
    body.insert("url".into(), c.target.clone().into());
    let optional = [
        ("dialect", &c.dialect),
        ("description", &c.description),
        ("security_header", &c.security_header),
        ("partner_app_id", &c.partner_app_id),
        ("activation", &c.activation),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            body.insert(key.into(), v.clone().into());
        }
    }
    if !c.event_types.is_empty() {
        body.insert("event_types".into(), c.event_types.clone().into());
    }
    if c.scheduled_refreshes {
        body.insert("scheduled_refreshes".into(), true.into());
    }
    for (key, limit) in [
        ("rate_limit", c.rate_limit),
        ("max_in_flight", c.max_in_flight),
    ] {
        if let Some(n) = limit {
            body.insert(key.into(), n.into());
        }
    }
    Value::Object(body)
}

async fn create(c: Create) -> Result<(), CliError> {
    let body = create_body(&c);
    let api = Api::new(c.api)?;
    let endpoint = api.post("/v1/webhook-endpoints", &body).await?;
    if api.json {
        output::json(&endpoint);
        return Ok(());
    }
    out!(
        "endpoint {}  {}  {}  {}",
        field(&endpoint, "id"),
        field(&endpoint, "status"),
        field(&endpoint, "dialect"),
        field(&endpoint, "url")
    );
    out!("secret   {}", field(&endpoint, "secret"));
    Ok(())
}

fn event_types(e: &Value) -> String {
    match e.get("event_types").and_then(Value::as_array) {
        Some(types) => types
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        None => "(all)".into(),
    }
}

async fn list(l: List) -> Result<(), CliError> {
    let api = Api::new(l.api)?;
    let endpoints = api.list_all("/v1/webhook-endpoints", &[]).await?;
    if api.json {
        output::json(&json!({ "data": endpoints }));
        return Ok(());
    }
    let rows = endpoints
        .iter()
        .map(|e| {
            vec![
                field(e, "id"),
                field(e, "status"),
                field(e, "dialect"),
                event_types(e),
                field(e, "url"),
            ]
        })
        .collect();
    output::print_table(
        &["ID", "STATUS", "DIALECT", "EVENT TYPES", "URL"],
        rows,
        "no endpoints yet: `freshet endpoints create URL`",
    );
    Ok(())
}

async fn test(t: Test) -> Result<(), CliError> {
    let api = Api::new(t.api)?;
    let body = match t.data {
        Some(data) => json!({ "data": data }),
        None => json!({}),
    };
    let sent = api
        .post(&format!("/v1/webhook-endpoints/{}/test", t.id), &body)
        .await?;
    if api.json {
        output::json(&sent);
    } else {
        out!("sent endpoint.test event {}", field(&sent, "event_id"));
    }
    Ok(())
}

async fn replay(r: Replay) -> Result<(), CliError> {
    let api = Api::new(r.api)?;
    let mut body = json!({ "since": r.since });
    if let Some(until) = r.until {
        body["until"] = until.into();
    }
    let queued = api
        .post(&format!("/v1/webhook-endpoints/{}/replay", r.id), &body)
        .await?;
    if api.json {
        output::json(&queued);
    } else {
        out!(
            "requeued {} deliveries, created {}",
            field(&queued, "requeued"),
            field(&queued, "created")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("endpoints").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    #[test]
    fn the_body_carries_only_what_was_given() {
        let Command::Create(c) = parse(&["create", "http://127.0.0.1:9000/hooks"]) else {
            unreachable!()
        };
        assert_eq!(
            create_body(&c),
            json!({"url": "http://127.0.0.1:9000/hooks"})
        );
        let Command::Create(c) = parse(&[
            "create",
            "http://h/x",
            "--dialect",
            "klavi",
            "--event-type",
            "link.created",
            "--event-type",
            "consent.authorised",
            "--partner-app-id",
            "p1",
        ]) else {
            unreachable!()
        };
        assert_eq!(
            create_body(&c),
            json!({
                "url": "http://h/x",
                "dialect": "klavi",
                "event_types": ["link.created", "consent.authorised"],
                "partner_app_id": "p1",
            })
        );
        let Command::Create(c) = parse(&[
            "create",
            "http://h/x",
            "--dialect",
            "bud",
            "--scheduled-refreshes",
        ]) else {
            unreachable!()
        };
        assert_eq!(
            create_body(&c),
            json!({"url": "http://h/x", "dialect": "bud", "scheduled_refreshes": true})
        );
    }

    #[test]
    fn test_data_must_be_json() {
        let bad = Cli::try_parse_from(["endpoints", "test", "e1", "--data", "{nope"]);
        assert_eq!(bad.err().unwrap().exit_code(), 2);
    }
}
