//! `freshet applications create`: a new tenant and its API key, with the admin token.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use super::{
    client::{Api, ApiArgs, Credential},
    error::CliError,
    output::{self, field, out},
};

#[derive(Subcommand)]
pub enum Command {
    /// Create an application; prints its API key, which freshet never shows again.
    Create(Create),
}

#[derive(Args)]
pub struct Create {
    /// A name for people to recognise the application by.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn run(command: Command) -> Result<(), CliError> {
    let Command::Create(c) = command;
    let api = Api::new(c.api)?;
    let body = json!({ "name": c.name });
    let created = api
        .call(
            Method::POST,
            "/v1/applications",
            Credential::AdminToken,
            &[],
            Some(&body),
        )
        .await?;
    if api.json {
        output::json(&created);
        return Ok(());
    }
    let key = field(&created, "api_key");
    out!(
        "application {}  {}",
        field(&created, "id"),
        field(&created, "name")
    );
    out!("api key     {key}");
    out!("export FRESHET_API_KEY={key}");
    eprintln!("freshet keeps only a hash of the key: store it now, it is not shown again");
    Ok(())
}
