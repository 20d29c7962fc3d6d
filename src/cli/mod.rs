//! The API subcommands (`freshet applications`, `customers`, `endpoints`, `links`,
//! `providers`, `refresh`, `events`): the common operations of a running node, over its public
//! HTTP API only, so they behave exactly as any other client would and need no database access.
//!
//! Data goes to stdout (`--json` for the API's own answers, for `jq` and scripts); progress
//! and errors go to stderr; the exit code says how it ended (see [`EXIT_CODES`]).

mod applications;
mod client;
mod customers;
mod endpoints;
mod error;
mod events;
pub mod links;
mod output;
mod refresh;
mod summary;

use clap::Subcommand;

pub use client::ApiArgs;
pub use error::{CliError, EXIT_CODES};

/// The API subcommands, flattened into `freshet`'s own.
#[derive(Subcommand)]
pub enum Command {
    /// Create applications (tenants); needs the admin token.
    #[command(subcommand)]
    Applications(applications::Command),
    /// Create and list an application's customers.
    #[command(subcommand)]
    Customers(customers::Command),
    /// Create, list, test and replay webhook endpoints.
    #[command(subcommand)]
    Endpoints(endpoints::Command),
    /// Connect a customer to a bank (and, on the sandbox bank, approve it).
    #[command(subcommand)]
    Links(links::Command),
    /// List the banks this node connects to.
    Providers(links::Providers),
    /// Refresh a customer's banks and follow the task to its end.
    Refresh(refresh::Refresh),
    /// Read the event log.
    #[command(subcommand)]
    Events(events::Command),
}

/// Runs one API subcommand and returns the process's exit code, having reported any error.
pub async fn run(command: Command) -> i32 {
    let result = match command {
        Command::Applications(c) => applications::run(c).await,
        Command::Customers(c) => customers::run(c).await,
        Command::Endpoints(c) => endpoints::run(c).await,
        Command::Links(c) => links::run(c).await,
        Command::Providers(p) => links::providers(p).await,
        Command::Refresh(r) => refresh::run(r).await,
        Command::Events(c) => events::run(c).await,
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            e.report();
            e.exit_code()
        }
    }
}
