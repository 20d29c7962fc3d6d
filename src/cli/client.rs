//! The HTTP side of the API subcommands: where the node is, which credential to send, and how
//! an answer becomes data or a [`CliError`].

use std::{path::Path, time::Duration};

use reqwest::{Method, RequestBuilder, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::error::{CliError, Problem};
use crate::config::ADMIN_TOKEN_FILE;

/// Options every API subcommand takes.
#[derive(clap::Args, Clone)]
pub struct ApiArgs {
    /// The freshet node to talk to.
    #[arg(
        long,
        env = "FRESHET_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: String,
    /// An application's API key, `fsk_…` (`freshet applications create` prints one).
    #[arg(
        long,
        env = "FRESHET_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// The operator's admin token [default: the contents of ./freshet-admin-token, which
    /// `freshet serve` writes in development].
    #[arg(
        long,
        env = "FRESHET_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// Print the API's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// A connection to one node, with the credentials to present.
pub struct Api {
    base: Url,
    pub http: reqwest::Client,
    api_key: Option<SecretString>,
    admin_token: Option<SecretString>,
    /// `--json`: commands print the API's answers rather than summaries.
    pub json: bool,
}

/// Which credential a call presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    ApiKey,
    AdminToken,
}

/// Long enough for a bank behind a link creation to answer (its own timeout is 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Api {
    pub fn new(args: ApiArgs) -> Result<Self, CliError> {
        let base = Url::parse(&args.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--url: `{}` is not an http or https URL, e.g. http://127.0.0.1:8080",
                    args.url
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| CliError::Unexpected(format!("starting the HTTP client: {e}")))?;
        Ok(Self {
            base,
            http,
            api_key: args.api_key.filter(|k| !k.is_empty()).map(Into::into),
            admin_token: args.admin_token.filter(|t| !t.is_empty()).map(Into::into),
            json: args.json,
        })
    }

    /// The URL of `path` (which starts with `/`) on the node.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    fn credential(&self, which: Credential) -> Result<SecretString, CliError> {
        match which {
            Credential::ApiKey => self.api_key.clone().ok_or_else(|| {
                CliError::Usage(
                    "no API key: pass --api-key or set FRESHET_API_KEY \
                     (`freshet applications create` prints one)"
                        .into(),
                )
            }),
            Credential::AdminToken => match &self.admin_token {
                Some(t) => Ok(t.clone()),
                None => admin_token_file(Path::new(ADMIN_TOKEN_FILE)),
            },
        }
    }

    /// Sends a request to the node and reads its JSON answer (`null` when it has no body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        credential: Credential,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let token = self.credential(credential)?;
        let url = self.url(path);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(token.expose_secret());
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        self.send(req, &url).await
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        self.call(Method::GET, path, Credential::ApiKey, query, None)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call(Method::POST, path, Credential::ApiKey, &[], Some(body))
            .await
    }

    /// Reads every page of a list, following `next_cursor`.
    pub async fn list_all(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, CliError> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.push(("limit", "500".into()));
            if let Some(c) = cursor.take() {
                q.push(("cursor", c));
            }
            let page = self.get(path, &q).await?;
            match page.get("data") {
                Some(Value::Array(data)) => rows.extend(data.iter().cloned()),
                _ => return Err(unexpected(path, "a list without `data`")),
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_string()),
                None => return Ok(rows),
            }
        }
    }

    async fn send(&self, req: RequestBuilder, url: &str) -> Result<Value, CliError> {
        let res = req.send().await.map_err(|e| self.unreachable(url, &e))?;
        let status = res.status();
        let body = res.bytes().await.map_err(|e| self.unreachable(url, &e))?;
        if status.is_success() {
            if body.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&body)
                .map_err(|_| unexpected(url, &format!("{status} with a body that is not JSON")));
        }
        match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) => Err(CliError::Refused(problem)),
            Err(_) => Err(unexpected(
                url,
                &format!("{status} without problem details"),
            )),
        }
    }

    /// What a failed request means for the user: almost always that nothing answers there.
    pub fn unreachable(&self, url: &str, e: &reqwest::Error) -> CliError {
        let why = if e.is_timeout() {
            "no answer in time".to_string()
        } else if e.is_connect() {
            "connection refused or no route".to_string()
        } else {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            why
        };
        CliError::Unreachable {
            url: strip_query(url),
            why,
            is_freshet: url.starts_with(self.base.as_str().trim_end_matches('/')),
        }
    }
}

fn unexpected(url: &str, what: &str) -> CliError {
    CliError::Unexpected(format!("{} answered {what}", strip_query(url)))
}

/// A URL without its query, which may carry a bank's `state` or a consent id.
fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// The admin token `freshet serve` wrote for a development node started in this directory.
fn admin_token_file(path: &Path) -> Result<SecretString, CliError> {
    let missing = || {
        CliError::Usage(format!(
            "no admin token: pass --admin-token, set FRESHET_ADMIN_TOKEN, or run this where \
             `freshet serve` wrote ./{ADMIN_TOKEN_FILE}"
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|_| missing())?;
    let token = text.trim();
    if token.is_empty() {
        return Err(missing());
    }
    Ok(token.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> ApiArgs {
        ApiArgs {
            url: url.into(),
            api_key: None,
            admin_token: None,
            json: false,
        }
    }

    #[test]
    fn only_http_urls_name_a_node() {
        for bad in ["nope", "ftp://127.0.0.1", "http://", "127.0.0.1:8080"] {
            assert_eq!(Api::new(args(bad)).err().unwrap().exit_code(), 2, "{bad}");
        }
        let api = Api::new(args("http://127.0.0.1:8080/")).unwrap();
        assert_eq!(api.url("/v1/events"), "http://127.0.0.1:8080/v1/events");
    }

    #[test]
    fn the_admin_token_file_is_read_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        assert_eq!(admin_token_file(&path).err().unwrap().exit_code(), 2);
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(admin_token_file(&path).err().unwrap().exit_code(), 2);
        std::fs::write(&path, "s3cret-token-0123456789\n").unwrap();
        assert_eq!(
            admin_token_file(&path).unwrap().expose_secret(),
            "s3cret-token-0123456789"
        );
    }

    #[test]
    fn a_missing_api_key_is_a_usage_error() {
        let api = Api::new(args("http://127.0.0.1:8080")).unwrap();
        assert_eq!(
            api.credential(Credential::ApiKey)
                .err()
                .unwrap()
                .exit_code(),
            2
        );
    }
}
