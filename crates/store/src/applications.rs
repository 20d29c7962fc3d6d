//! Applications (tenants) and their API keys.
//!
//! A key is stored as a public lookup id plus a SHA-256 of its secret part; the secret itself
//! is never stored. Deriving and checking keys is the API's job: the store only keeps records.

use freshet_model::{ApplicationId, ids::ApiKeyId};
use time::OffsetDateTime;

use crate::{
    Result, Store,
    codec::{RowExt, Ts},
    on_pool,
};

/// A stored application.
#[derive(Clone, Debug, PartialEq)]
pub struct Application {
    pub id: ApplicationId,
    pub name: String,
    pub created_at: OffsetDateTime,
}

/// An API key to store with a new application.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    /// The key's public part, by which it is found.
    pub lookup: String,
    /// SHA-256 of the key's secret part.
    pub secret_hash: Vec<u8>,
}

/// What authenticating with a key needs from the store.
#[derive(Clone, Debug)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub application_id: ApplicationId,
    pub secret_hash: Vec<u8>,
}

impl Store {
    /// Creates an application with its first API key, atomically.
    pub async fn create_application(&self, name: &str, key: &NewApiKey) -> Result<Application> {
        let app = Application {
            id: ApplicationId::new(),
            name: name.to_string(),
            created_at: freshet_model::time::now(),
        };
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO applications (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(app.id.0)
                .bind(&app.name)
                .bind(Ts(app.created_at))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO api_keys (id, application_id, lookup, secret_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(key.id.0)
            .bind(app.id.0)
            .bind(&key.lookup)
            .bind(&key.secret_hash)
            .bind(Ts(app.created_at))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(app)
    }

    /// Reads an application.
    pub async fn get_application(&self, id: ApplicationId) -> Result<Option<Application>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query("SELECT id, name, created_at FROM applications WHERE id = $1")
                .bind(id.0)
                .fetch_optional(pool)
                .await?;
            row.map(|r| {
                Ok(Application {
                    id: r.uuid("id")?.into(),
                    name: r.text("name")?,
                    created_at: r.ts("created_at")?,
                })
            })
            .transpose()
        })
    }

    /// Finds an API key by its public part.
    pub async fn find_api_key(&self, lookup: &str) -> Result<Option<ApiKeyRecord>> {
        on_pool!(self, read, |pool| {
            let row = sqlx::query(
                "SELECT id, application_id, secret_hash FROM api_keys WHERE lookup = $1",
            )
            .bind(lookup)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                Ok(ApiKeyRecord {
                    id: r.uuid("id")?.into(),
                    application_id: r.uuid("application_id")?.into(),
                    secret_hash: r.bytes("secret_hash")?,
                })
            })
            .transpose()
        })
    }
}
