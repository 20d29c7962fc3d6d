//! `freshet refresh`: start a refresh of a customer's banks and follow the task to its end,
//! a line on stderr each time a bank's part changes, the outcome on stdout.

use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value};

use super::{
    client::{Api, ApiArgs},
    error::CliError,
    output::{self, field, out},
};

#[derive(Args)]
pub struct Refresh {
    /// The customer's id.
    #[arg(long)]
    customer: String,
    /// Only this bank (a provider id); repeat for several [default: every authorised consent].
    #[arg(long = "provider", value_name = "PROVIDER")]
    providers: Vec<String>,
    /// The customer's IP address, when they are present: the bank's unattended limits do not
    /// apply.
    #[arg(long, value_name = "IP")]
    customer_ip: Option<String>,
    /// Print the task as started and exit, rather than following it.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    api: ApiArgs,
}

const POLL: Duration = Duration::from_millis(250);

pub async fn run(r: Refresh) -> Result<(), CliError> {
    let mut body = Map::new();
    if !r.providers.is_empty() {
        body.insert("providers".into(), r.providers.into());
    }
    if let Some(ip) = r.customer_ip {
        body.insert("customer_ip".into(), ip.into());
    }
    let api = Api::new(r.api)?;
    let mut task = api
        .post(
            &format!("/v1/customers/{}/refresh", r.customer),
            &Value::Object(body),
        )
        .await?;
    let id = field(&task, "task_id");
    if r.no_wait {
        if api.json {
            output::json(&task);
        } else {
            out!("task {id}  {}", field(&task, "status"));
        }
        return Ok(());
    }
    eprintln!(
        "refresh task {id}: {} bank(s); following it (Ctrl-C stops following, not the refresh)",
        sub_tasks(&task).len()
    );
    let mut seen: Vec<(String, String)> = Vec::new();
    loop {
        for line in changes(&mut seen, &task) {
            eprintln!("  {line}");
        }
        if ended(&task) {
            break;
        }
        tokio::time::sleep(POLL).await;
        task = api.get(&format!("/v1/refresh-tasks/{id}"), &[]).await?;
    }
    if api.json {
        output::json(&task);
    } else {
        out!("{}", summary(&task).trim_end());
    }
    if task["status"] == "Failed" {
        return Err(CliError::Failed(format!(
            "refresh task {id} Failed: {}",
            field(&task, "result")
        )));
    }
    Ok(())
}

fn sub_tasks(task: &Value) -> &[Value] {
    task["sub_tasks"].as_array().map_or(&[], Vec::as_slice)
}

fn ended(task: &Value) -> bool {
    task["status"] == "Completed" || task["status"] == "Failed"
}

/// How a bank's part stands: status (padded to the longest, `Completed`), stage and result.
fn state(sub: &Value) -> String {
    let mut s = format!("{:<9}", field(sub, "status"));
    if let Some(stage) = sub["stage"].as_str() {
        s.push_str(&format!("  stage {stage}"));
    }
    if let Some(result) = sub["result"].as_str() {
        s.push_str(&format!("  result {result}"));
    }
    s.trim_end().to_string()
}

/// A line for each bank whose part changed since the last look; `seen` remembers the last
/// state of each sub-task by its id. Bank names are padded alike, so the states line up.
fn changes(seen: &mut Vec<(String, String)>, task: &Value) -> Vec<String> {
    let width = sub_tasks(task)
        .iter()
        .map(|s| field(s, "provider").chars().count())
        .max()
        .unwrap_or(0);
    let mut lines = Vec::new();
    for sub in sub_tasks(task) {
        let id = field(sub, "task_id");
        let now = state(sub);
        match seen.iter_mut().find(|(s, _)| *s == id) {
            Some((_, last)) if *last == now => continue,
            Some((_, last)) => *last = now.clone(),
            None => seen.push((id, now.clone())),
        }
        lines.push(format!("{:<width$}  {now}", field(sub, "provider")));
    }
    lines
}

/// The outcome: the task, then a line per bank.
fn summary(task: &Value) -> String {
    let banks: Vec<Vec<String>> = sub_tasks(task)
        .iter()
        .map(|sub| {
            let accounts = sub["account_ids"].as_array().map_or(0, Vec::len);
            vec![
                format!("  {}", field(sub, "provider")),
                field(sub, "status"),
                field(sub, "result"),
                format!("{accounts} account(s)"),
            ]
        })
        .collect();
    format!(
        "task {}  {}  {}\n{}",
        field(task, "task_id"),
        field(task, "status"),
        field(task, "result"),
        output::table(&banks)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn task(status: &str, subs: Value) -> Value {
        json!({"task_id": "t", "status": status, "result": null, "sub_tasks": subs})
    }

    #[test]
    fn a_line_per_change_and_none_for_the_same_state() {
        let mut seen = Vec::new();
        let t = task(
            "Running",
            json!([
                {"task_id": "a", "provider": "natwest", "status": "Running", "stage": null, "result": null},
                {"task_id": "b", "provider": "tatrabanka", "status": "Pending", "stage": null, "result": null},
            ]),
        );
        assert_eq!(
            changes(&mut seen, &t),
            ["natwest     Running", "tatrabanka  Pending"]
        );
        assert!(changes(&mut seen, &t).is_empty());
        let t = task(
            "Failed",
            json!([
                {"task_id": "a", "provider": "natwest", "status": "Running", "stage": "login_success", "result": null},
                {"task_id": "b", "provider": "tatrabanka", "status": "Failed", "stage": null, "result": "provider_failure"},
            ]),
        );
        assert_eq!(
            changes(&mut seen, &t),
            [
                "natwest     Running    stage login_success",
                "tatrabanka  Failed     result provider_failure"
            ]
        );
        assert!(ended(&t));
        assert_eq!(
            summary(&t),
            "task t  Failed  -\n  natwest     Running  -                 0 account(s)\n  \
             tatrabanka  Failed   provider_failure  0 account(s)\n"
        );
    }
}
