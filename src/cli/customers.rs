//! `freshet customers create | list`.

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::{
    client::{Api, ApiArgs},
    error::CliError,
    output::{self, field, out},
};

#[derive(Subcommand)]
pub enum Command {
    /// Create a customer; prints its id.
    Create(Create),
    /// List the application's customers, oldest first.
    List(List),
}

#[derive(Args)]
pub struct Create {
    /// Your own id for this customer, unique within the application.
    #[arg(long)]
    external_id: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Args)]
pub struct List {
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Create(c) => create(c).await,
        Command::List(l) => list(l).await,
    }
}

async fn create(c: Create) -> Result<(), CliError> {
    let api = Api::new(c.api)?;
    let mut body = Map::new();
    if let Some(x) = c.external_id {
        body.insert("external_id".into(), x.into());
    }
    let customer = api.post("/v1/customers", &Value::Object(body)).await?;
    if api.json {
        output::json(&customer);
    } else {
        out!(
            "customer {}  external_id {}",
            field(&customer, "id"),
            field(&customer, "external_id")
        );
    }
    Ok(())
}

async fn list(l: List) -> Result<(), CliError> {
    let api = Api::new(l.api)?;
    let customers = api.list_all("/v1/customers", &[]).await?;
    if api.json {
        output::json(&serde_json::json!({ "data": customers }));
        return Ok(());
    }
    let rows = customers
        .iter()
        .map(|c| {
            vec![
                field(c, "id"),
                field(c, "external_id"),
                field(c, "created_at"),
            ]
        })
        .collect();
    output::print_table(
        &["ID", "EXTERNAL ID", "CREATED"],
        rows,
        "no customers yet: `freshet customers create`",
    );
    Ok(())
}
