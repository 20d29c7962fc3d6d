//! `freshet links create [--approve]` and `freshet providers`: connecting a customer to a bank.
//!
//! `--approve` does what the customer's browser would do on the sandbox bank's page — post
//! `decision=approve`, follow the bank's redirect back to freshet's callback and, when a FAPI
//! bank answers in the URL fragment (`code id_token`), post the fragment to the callback as
//! its page's script would — so a development setup, relaxed or strict, gets an authorised
//! consent without a browser. `freshet providers check` proves a registry against the banks.

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
    /// The node's provider registry, whose `ca` roots `--approve` trusts at the banks' pages
    /// (the strict sandbox's own CA).
    #[arg(long, env = "FRESHET_PROVIDERS", value_name = "FILE")]
    providers: Option<std::path::PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Providers {
    #[command(subcommand)]
    command: Option<ProvidersCommand>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Subcommand)]
enum ProvidersCommand {
    /// Load a provider registry, fetch each issuer's discovery document and keys, and print
    /// one line per provider: ok, or what is wrong. Exits 0 only when all are ok.
    Check {
        /// The registry file.
        #[arg(long, env = "FRESHET_PROVIDERS", value_name = "FILE")]
        providers: std::path::PathBuf,
    },
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
    let roots = match &c.providers {
        Some(file) => freshet_banks::registry::trust_roots(file)
            .map_err(|e| CliError::Usage(e.to_string()))?,
        None => Vec::new(),
    };
    approve(&api, url, &roots).await?;
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

/// Approves on the sandbox bank's page as a browser would (see [`approve_in_browser`]).
async fn approve(api: &Api, url: &str, roots: &[String]) -> Result<(), CliError> {
    let browser = browser(roots)?;
    approve_in_browser(&browser, url, None)
        .await
        .map_err(|e| match e {
            Approval::Unreachable(url, e) => api.unreachable(&url, &e),
            Approval::Refused(why) => CliError::Failed(why),
        })
}

/// Why approving at the bank's page did not end at freshet's "Connected".
pub enum Approval {
    Unreachable(String, reqwest::Error),
    Refused(String),
}

/// What the customer's browser does at the sandbox bank's page: reads it (proving it is the
/// sandbox's form), posts the decision (as `customer`, when given), then follows the
/// redirects back to freshet's callback, posting a fragment's parameters there as the
/// callback page's script does. `browser` must not follow redirects itself.
pub async fn approve_in_browser(
    browser: &reqwest::Client,
    url: &str,
    customer: Option<&str>,
) -> Result<(), Approval> {
    let unreachable = |url: &str| {
        let url = url.to_string();
        move |e| Approval::Unreachable(url, e)
    };
    let page = browser.get(url).send().await.map_err(unreachable(url))?;
    if !page.status().is_success() {
        let status = page.status();
        let text = page.text().await.unwrap_or_default();
        return Err(Approval::Refused(format!(
            "the bank's page answered {status}: {}",
            page_text(&text)
        )));
    }
    let html = page.text().await.map_err(unreachable(url))?;
    if !html.contains(r#"name="decision" value="approve""#) {
        return Err(Approval::Refused(
            "--approve works with the sandbox bank only; \
             open the authorisation URL in a browser instead"
                .into(),
        ));
    }
    let mut form = vec![("decision", "approve")];
    if let Some(c) = customer {
        form.push(("customer", c));
    }
    let mut resp = browser
        .post(url)
        .form(&form)
        .send()
        .await
        .map_err(unreachable(url))?;
    for _ in 0..5 {
        if !resp.status().is_redirection() {
            break;
        }
        let Some(location) = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| resp.url().join(l).ok())
        else {
            break;
        };
        let mut target = location.clone();
        target.set_fragment(None);
        resp = match location.fragment() {
            Some(fragment) => {
                browser
                    .post(target.as_str())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(fragment.to_string())
                    .send()
                    .await
            }
            None => browser.get(target.as_str()).send().await,
        }
        .map_err(unreachable(target.as_str()))?;
    }
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() || !text.contains("Connected") || text.contains("Not connected") {
        return Err(Approval::Refused(format!(
            "approving failed: the bank or freshet's callback answered {status}: {}",
            page_text(&text)
        )));
    }
    Ok(())
}

/// A client that behaves like the customer's browser: redirects handled one by one, the
/// registry's CA roots trusted on top of the system's.
pub fn browser(roots: &[String]) -> Result<reqwest::Client, CliError> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60));
    for pem in roots {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
            CliError::Usage(format!("--providers: a `ca` is not a certificate: {e}"))
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build()
        .map_err(|e| CliError::Unexpected(format!("building an HTTP client: {e}")))
}

/// A refusal page's text, without its markup.
fn page_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
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
    if let Some(ProvidersCommand::Check { providers }) = p.command {
        return check(&providers).await;
    }
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

/// `freshet providers check`: the registry loads, and each bank answers as configured.
async fn check(file: &std::path::Path) -> Result<(), CliError> {
    let providers =
        freshet_banks::registry::load(file).map_err(|e| CliError::Failed(e.to_string()))?;
    let mut failed = 0;
    for p in providers {
        let id = p.id.clone();
        let connector = freshet_banks::Connector::new(p, reqwest::Client::new());
        match connector.check().await {
            Ok(found) => out!("{id:<16} ok     {found}"),
            Err(e) => {
                failed += 1;
                out!("{id:<16} FAILED {}", e.detail);
            }
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{failed} provider(s) failed the check"
        )))
    }
}
