//! `freshet links create [--approve]` and `freshet providers`: connecting a customer to a bank.
//!
//! `--approve` does what the customer would do on the built-in sandbox bank's page — post
//! `decision=approve` and follow the bank's redirect back to freshet's callback — so a
//! development setup gets an authorised consent without a browser.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{
    client::{Api, ApiArgs},
    error::CliError,
    output::{self, field, out},
};

#[derive(Subcommand)]
pub enum Command {
    /// Create a link to a bank; prints the URL the customer authorises it at.
    Create(Create),
}

#[derive(Args)]
pub struct Create {
    /// The customer's id.
    #[arg(long)]
    customer: String,
    /// The bank, from `freshet providers`.
    #[arg(long)]
    provider: String,
    /// On the sandbox bank: approve the consent as the customer would, and wait until it is
    /// authorised.
    #[arg(long)]
    approve: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct Providers {
    #[command(flatten)]
    api: ApiArgs,
}

/// How long a consent may take to leave `awaiting_authorisation` once approved.
const AUTHORISATION_WAIT: Duration = Duration::from_secs(30);

pub async fn run(command: Command) -> Result<(), CliError> {
    let Command::Create(c) = command;
    let api = Api::new(c.api)?;
    let link = api
        .post(
            &format!("/v1/customers/{}/links", c.customer),
            &json!({ "provider_id": c.provider }),
        )
        .await?;
    let consent = &link["consent"];
    if !c.approve {
        if api.json {
            output::json(&link);
        } else {
            out!("link     {}", field(&link, "id"));
            out!(
                "consent  {}  {}",
                field(consent, "id"),
                field(consent, "status")
            );
            out!("authorise at {}", field(consent, "authorisation_url"));
        }
        return Ok(());
    }
    let consent_id = field(consent, "id");
    let Some(url) = consent["authorisation_url"].as_str() else {
        return Err(CliError::Unexpected(format!(
            "consent {consent_id} has no authorisation URL to approve at"
        )));
    };
    eprintln!(
        "link {} created; approving consent {consent_id} on the bank's page",
        field(&link, "id")
    );
    approve(&api, url).await?;
    eprintln!("approved; waiting for the consent to be authorised");
    let consent = settled(&api, &consent_id).await?;
    let status = field(&consent, "status");
    if api.json {
        output::json(&consent);
    } else {
        out!("consent {consent_id}  {status}");
    }
    if status == "authorised" {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "consent {consent_id} ended {status}, not authorised"
        )))
    }
}

/// Approves on the sandbox bank's page: reads it (proving it is the sandbox's form), then
/// posts the decision and follows the redirects to freshet's callback.
async fn approve(api: &Api, url: &str) -> Result<(), CliError> {
    let not_sandbox = || {
        CliError::Failed(
            "--approve works with the built-in sandbox bank only; \
             open the authorisation URL in a browser instead"
                .into(),
        )
    };
    let page = api
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| api.unreachable(url, &e))?;
    if !page.status().is_success() {
        return Err(CliError::Failed(format!(
            "the bank's page answered {}",
            page.status()
        )));
    }
    let html = page.text().await.map_err(|e| api.unreachable(url, &e))?;
    if !html.contains(r#"name="decision" value="approve""#) {
        return Err(not_sandbox());
    }
    let done = api
        .http
        .post(url)
        .form(&[("decision", "approve")])
        .send()
        .await
        .map_err(|e| api.unreachable(url, &e))?;
    if !done.status().is_success() {
        return Err(CliError::Failed(format!(
            "approving failed: the bank or freshet's callback answered {}",
            done.status()
        )));
    }
    Ok(())
}

/// Polls the consent until it leaves `awaiting_authorisation`.
async fn settled(api: &Api, consent_id: &str) -> Result<Value, CliError> {
    let started = Instant::now();
    loop {
        let consent = api.get(&format!("/v1/consents/{consent_id}"), &[]).await?;
        if consent["status"] != "awaiting_authorisation" {
            return Ok(consent);
        }
        if started.elapsed() > AUTHORISATION_WAIT {
            return Err(CliError::Failed(format!(
                "consent {consent_id} still awaits authorisation after {} s",
                AUTHORISATION_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn providers(p: Providers) -> Result<(), CliError> {
    let api = Api::new(p.api)?;
    let list = api.get("/v1/providers", &[]).await?;
    if api.json {
        output::json(&list);
        return Ok(());
    }
    let rows = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                field(p, "id"),
                field(p, "standard"),
                field(p, "country"),
                field(p, "name"),
            ]
        })
        .collect();
    output::print_table(
        &["ID", "STANDARD", "COUNTRY", "NAME"],
        rows,
        "this node connects to no banks",
    );
    Ok(())
}
