//! How an API subcommand fails, and the exit code each failure gets.

use serde::Deserialize;

/// The exit codes, as `freshet --help` and docs/cli.md list them.
pub const EXIT_CODES: &str = "\
Exit codes of the API subcommands (applications, customers, endpoints, links, providers, refresh, events):
  0  success
  1  the API refused the request: its problem details (title, detail, each field) are on stderr
  2  usage error: a bad or missing option, or no API key / admin token to send
  3  cannot reach freshet: connection refused or no answer in time
  4  a followed operation ended in failure: a refresh task Failed, a link was not authorised";

/// RFC 9457 problem details, as freshet's API answers every error.
#[derive(Debug, Deserialize)]
pub struct Problem {
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default)]
    pub errors: Vec<FieldProblem>,
}

/// One field a problem names.
#[derive(Debug, Deserialize)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API answered with problem details.
    #[error("{} (HTTP {}): {}", .0.title, .0.status, .0.detail)]
    Refused(Problem),
    /// The API answered something that is not what it documents.
    #[error("{0}")]
    Unexpected(String),
    /// The command line cannot be acted on.
    #[error("{0}")]
    Usage(String),
    /// Nothing answered at `url`.
    #[error("cannot reach {url}: {why}")]
    Unreachable {
        url: String,
        why: String,
        /// Whether `url` is the freshet node (rather than, say, a bank's page).
        is_freshet: bool,
    },
    /// A followed operation ended, and not well.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Refused(_) | Self::Unexpected(_) => 1,
            Self::Usage(_) => 2,
            Self::Unreachable { .. } => 3,
            Self::Failed(_) => 4,
        }
    }

    /// Writes the error to stderr, with what the user can do about it.
    pub fn report(&self) {
        eprintln!("error: {self}");
        match self {
            Self::Refused(problem) => {
                for e in &problem.errors {
                    eprintln!("  {}: {}", e.field, e.message);
                }
            }
            Self::Unreachable {
                is_freshet: true, ..
            } => eprintln!(
                "  is freshet running there? `freshet serve` starts one; \
                 --url or FRESHET_URL points elsewhere"
            ),
            _ => {}
        }
    }
}
