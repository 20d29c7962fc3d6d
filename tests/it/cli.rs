//! The API subcommands as a user runs them: the real `freshet` binary against a node, from
//! an application to a failed refresh, and what each way of failing exits with.

use std::{process::Stdio, time::Duration};

use freshet::config::Config;
use freshet_engine::testing::{Answer, Receiver};
use freshet_store::testing::Backend;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{ADMIN_TOKEN, TestApp, run_with};

const EXE: &str = env!("CARGO_BIN_EXE_freshet");

/// The scheduler stays out of the way: the event log changes only when the test acts.
fn quiet(c: &mut Config) {
    c.refresh_tick = Duration::from_secs(3600);
}

/// How a run of the binary ended.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|_| panic!("JSON on stdout, got: {}", self.stdout))
    }
}

/// `freshet` for one user: the node's URL and, once there is one, an API key in the
/// environment, a working directory of their own, and nothing inherited from the test's
/// environment.
struct User {
    url: String,
    key: Option<String>,
    dir: tempfile::TempDir,
}

impl User {
    fn new(app: &TestApp) -> Self {
        Self {
            url: app.base.clone(),
            key: None,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(EXE);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("FRESHET_API_KEY")
            .env_remove("FRESHET_ADMIN_TOKEN")
            .env("FRESHET_URL", &self.url)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(key) = &self.key {
            cmd.env("FRESHET_API_KEY", key);
        }
        cmd
    }

    async fn run(&self, args: &[&str]) -> Ran {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("freshet {args:?} did not end"))
            .unwrap();
        Ran {
            code: out.status.code().expect("an exit code"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Runs and expects exit code 0.
    async fn ok(&self, args: &[&str]) -> Ran {
        let ran = self.run(args).await;
        assert_eq!(
            ran.code, 0,
            "freshet {args:?}\nstdout: {}\nstderr: {}",
            ran.stdout, ran.stderr
        );
        ran
    }
}

/// Every event of the application, as the API lists them, oldest first.
async fn listed_events(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let (s, page) = app
        .call(
            Method::GET,
            &format!("/v1/events?limit=500{query}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page["next_cursor"].is_null(), "one page holds them all");
    page["data"].as_array().unwrap().clone()
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn ndjson(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The last word of the stdout line starting with `prefix`.
fn value_after(stdout: &str, prefix: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("a line starting `{prefix}` in: {stdout}"));
    line[prefix.len()..].trim().to_string()
}

async fn walkthrough(app: TestApp) {
    let mut user = User::new(&app);

    // The admin token from the file a development node writes where it starts.
    std::fs::write(user.dir.path().join("freshet-admin-token"), ADMIN_TOKEN).unwrap();
    let created = user.ok(&["applications", "create", "--name", "cli"]).await;
    let key = value_after(&created.stdout, "export FRESHET_API_KEY=");
    assert!(key.starts_with("fsk_"), "{}", created.stdout);
    assert!(!created.stdout.contains(ADMIN_TOKEN) && !created.stderr.contains(ADMIN_TOKEN));
    user.key = Some(key.clone());

    let customer = user
        .ok(&["customers", "create", "--external-id", "c-1", "--json"])
        .await
        .json();
    let cid = customer["id"].as_str().unwrap().to_string();
    assert_eq!(customer["external_id"], "c-1");
    let list = user.ok(&["customers", "list"]).await;
    assert!(
        list.stdout
            .lines()
            .any(|l| l.contains(&cid) && l.contains("c-1")),
        "{}",
        list.stdout
    );

    let hooks = Receiver::start(vec![Answer::Status(204)]).await;
    let endpoint = user
        .ok(&["endpoints", "create", &hooks.url(), "--json"])
        .await
        .json();
    assert!(endpoint["secret"].as_str().unwrap().starts_with("whsec_"));
    let eid = endpoint["id"].as_str().unwrap().to_string();
    let list = user.ok(&["endpoints", "list"]).await;
    assert!(
        list.stdout
            .lines()
            .any(|l| l.contains(&eid) && l.contains(&hooks.url())),
        "{}",
        list.stdout
    );
    let sent = user
        .ok(&["endpoints", "test", &eid, "--data", r#"{"hello": "cli"}"#])
        .await;
    let test_event = value_after(&sent.stdout, "sent endpoint.test event");
    let (s, event) = app
        .call(
            Method::GET,
            &format!("/v1/events/{test_event}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{event}");
    assert_eq!(event["data"]["data"], json!({"hello": "cli"}));

    let providers = user.ok(&["providers"]).await;
    assert!(providers.stdout.contains("natwest"), "{}", providers.stdout);

    // Links approved on the sandbox bank's page, as the customer would.
    for bank in ["natwest", "tatrabanka"] {
        let linked = user
            .ok(&[
                "links",
                "create",
                "--customer",
                &cid,
                "--provider",
                bank,
                "--approve",
            ])
            .await;
        assert!(linked.stdout.contains("authorised"), "{}", linked.stdout);
        assert!(linked.stderr.contains("approving"), "{}", linked.stderr);
    }
    let (_, consents) = app
        .call(
            Method::GET,
            &format!("/v1/customers/{cid}/consents"),
            Some(&key),
            None,
        )
        .await;
    let statuses: Vec<_> = consents["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["authorised", "authorised"], "{consents}");

    // A refresh that completes: exit 0, a progress line per bank on stderr.
    let done = user.ok(&["refresh", "--customer", &cid]).await;
    let task = value_after(&done.stdout, "task");
    let task_id = task.split_whitespace().next().unwrap();
    assert!(task.contains("Completed"), "{}", done.stdout);
    for bank in ["natwest", "tatrabanka"] {
        assert!(done.stderr.contains(bank), "{}", done.stderr);
    }
    let (_, t) = app
        .call(
            Method::GET,
            &format!("/v1/refresh-tasks/{task_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(t["status"], "Completed", "{t}");

    // One that fails at one bank: exit 4, and the bank's result says why.
    let fault = app
        .http
        .post(app.url("/sandbox/control/faults"))
        .json(&json!({"provider_id": "tatrabanka", "kind": "provider_failure"}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());
    let failed = user.run(&["refresh", "--customer", &cid]).await;
    assert_eq!(failed.code, 4, "{}\n{}", failed.stdout, failed.stderr);
    assert!(
        failed
            .stdout
            .lines()
            .any(|l| l.contains("tatrabanka") && l.contains("provider_failure")),
        "{}",
        failed.stdout
    );
    assert!(failed.stderr.contains("Failed"), "{}", failed.stderr);

    // The log as the API lists it, and as the CLI prints it.
    let all = listed_events(&app, &key, "").await;
    assert!(all.len() > 10, "enough events to tail the last 10 of");
    let everything = user
        .ok(&[
            "events",
            "tail",
            "--since",
            "2000-01-01T00:00:00Z",
            "--json",
        ])
        .await;
    assert_eq!(ids(&ndjson(&everything.stdout)), ids(&all));
    assert_eq!(
        ndjson(&everything.stdout),
        all,
        "the API's own JSON, line by line"
    );
    let latest = user.ok(&["events", "tail"]).await;
    let lines: Vec<&str> = latest.stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{}", latest.stdout);
    for (line, event) in lines.iter().zip(&all[all.len() - 10..]) {
        let (id, kind) = (
            event["id"].as_str().unwrap(),
            event["type"].as_str().unwrap(),
        );
        assert!(
            line.contains(id) && line.contains(kind),
            "{line} vs {event}"
        );
    }
    let two_types = user
        .ok(&[
            "events",
            "tail",
            "--since",
            "2000-01-01T00:00:00Z",
            "--type",
            "refresh.completed",
            "--type",
            "consent.authorised",
            "--json",
        ])
        .await;
    let mut want = listed_events(&app, &key, "&type=refresh.completed").await;
    want.extend(listed_events(&app, &key, "&type=consent.authorised").await);
    let mut want = ids(&want);
    want.sort();
    assert_eq!(want.len(), 4, "two refreshes, two consents");
    assert_eq!(ids(&ndjson(&two_types.stdout)), want);
    assert_eq!(
        listed_events(&app, &key, "").await,
        all,
        "the log stood still"
    );
    app.stop().await;
}

#[tokio::test]
async fn walkthrough_sqlite() {
    run_with(Backend::Sqlite, quiet, walkthrough).await;
}

#[tokio::test]
async fn walkthrough_postgres() {
    run_with(Backend::Postgres, quiet, walkthrough).await;
}

#[tokio::test]
async fn tail_follow_prints_every_new_event_once() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        let mut user = User::new(&app);
        let key = app.new_application("follow").await;
        user.key = Some(key.clone());
        let hooks = Receiver::start(vec![Answer::Status(204)]).await;
        let (s, endpoint) = app
            .call(
                Method::POST,
                "/v1/webhook-endpoints",
                Some(&key),
                Some(json!({"url": hooks.url()})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{endpoint}");
        let test_path = format!(
            "/v1/webhook-endpoints/{}/test",
            endpoint["id"].as_str().unwrap()
        );
        for _ in 0..3 {
            app.call(Method::POST, &test_path, Some(&key), None).await;
        }

        let mut child = user
            .command(&["events", "tail", "--follow", "--json", "--last", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        let mut next = async || -> Option<Value> {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .ok()?
                .unwrap()?;
            Some(serde_json::from_str(&line).unwrap())
        };
        for _ in 0..2 {
            printed.push(next().await.expect("the latest events first"));
        }
        // New events while it follows, over several of its polls.
        for _ in 0..4 {
            let (s, _) = app.call(Method::POST, &test_path, Some(&key), None).await;
            assert_eq!(s, StatusCode::ACCEPTED);
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        for _ in 0..4 {
            printed.push(next().await.expect("each new event"));
        }
        // A few more polls re-read the same window: nothing is printed again.
        let more = tokio::time::timeout(Duration::from_millis(3500), lines.next_line()).await;
        assert!(more.is_err(), "printed again: {more:?}");
        child.kill().await.unwrap();

        let all = listed_events(&app, &key, "").await;
        assert_eq!(all.len(), 7);
        assert_eq!(ids(&printed), ids(&all[1..]));
    })
    .await;
}

#[tokio::test]
async fn each_way_of_failing_has_its_exit_code() {
    run_with(Backend::Sqlite, quiet, |app| async move {
        let mut user = User::new(&app);

        // No admin token anywhere, no API key: usage errors, before any request.
        let no_token = user.run(&["applications", "create", "--name", "x"]).await;
        assert_eq!(no_token.code, 2, "{}", no_token.stderr);
        assert!(
            no_token.stderr.contains("admin token"),
            "{}",
            no_token.stderr
        );
        let no_key = user.run(&["customers", "list"]).await;
        assert_eq!(no_key.code, 2, "{}", no_key.stderr);
        assert!(
            no_key.stderr.contains("FRESHET_API_KEY"),
            "{}",
            no_key.stderr
        );

        // A wrong admin token: the API refuses, and says so.
        let wrong = user
            .run(&[
                "applications",
                "create",
                "--name",
                "x",
                "--admin-token",
                "not-the-token-at-all",
            ])
            .await;
        assert_eq!(wrong.code, 1, "{}", wrong.stderr);
        assert!(wrong.stderr.contains("Unauthorized"), "{}", wrong.stderr);
        assert!(!wrong.stderr.contains("not-the-token-at-all"));

        user.key = Some(app.new_application("errors").await);
        // Bad input: exit 1, the problem's title and each field it names on stderr.
        let dialect = user
            .run(&[
                "endpoints",
                "create",
                "http://127.0.0.1:9/hooks",
                "--dialect",
                "nope",
            ])
            .await;
        assert_eq!(dialect.code, 1, "{}", dialect.stderr);
        assert!(
            dialect.stderr.contains("Invalid field values"),
            "{}",
            dialect.stderr
        );
        assert!(
            dialect
                .stderr
                .lines()
                .any(|l| l.trim_start().starts_with("dialect:")),
            "{}",
            dialect.stderr
        );
        let url = user
            .run(&["endpoints", "create", "ftp://127.0.0.1/hooks"])
            .await;
        assert_eq!(url.code, 1, "{}", url.stderr);
        assert!(
            url.stderr
                .lines()
                .any(|l| l.trim_start().starts_with("url:")),
            "{}",
            url.stderr
        );
        let since = user
            .run(&[
                "endpoints",
                "replay",
                "0190a000-0000-7000-8000-000000000000",
                "--since",
                "yesterday",
            ])
            .await;
        assert_eq!(since.code, 1, "{}", since.stderr);
        assert!(
            since
                .stderr
                .lines()
                .any(|l| l.trim_start().starts_with("since:")),
            "{}",
            since.stderr
        );
        assert_eq!(
            user.run(&["events", "tail", "--type", "no.such.type"])
                .await
                .code,
            1
        );

        // Usage errors clap catches: exit 2.
        let data = user
            .run(&["endpoints", "test", "e1", "--data", "{nope"])
            .await;
        assert_eq!(data.code, 2, "{}", data.stderr);
        assert_eq!(
            user.run(&["events", "tail", "--since", "today"]).await.code,
            2
        );

        // Nothing listening: exit 3, naming the URL and what to do.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let nowhere = format!("http://127.0.0.1:{port}");
        let unreachable = user.run(&["customers", "list", "--url", &nowhere]).await;
        assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);
        assert!(
            unreachable.stderr.contains(&nowhere),
            "{}",
            unreachable.stderr
        );
        assert!(
            unreachable.stderr.contains("freshet serve"),
            "{}",
            unreachable.stderr
        );

        // A bank the node does not know: refused before anything is approved, naming the field.
        let customer = app
            .new_customer(user.key.as_deref().unwrap(), json!({}))
            .await;
        let cid = customer["id"].as_str().unwrap();
        let missing = user
            .run(&[
                "links",
                "create",
                "--customer",
                cid,
                "--provider",
                "no-such-bank",
                "--approve",
            ])
            .await;
        assert_eq!(missing.code, 1, "{}", missing.stderr);
        assert!(missing.stderr.contains("provider_id"), "{}", missing.stderr);
    })
    .await;
}
