//! Keys freshet signs with on behalf of every application (Bud-dialect deliveries), shared by
//! every node of a database so that any node's signature verifies against any node's JWKS.
//!
//! Keys are numbered by generation; the highest signs. Creating the first key is an insert
//! into generation 1 that does nothing if the slot is taken, so nodes starting together on
//! one PostgreSQL end with one key whichever wins. A rotation adds the next generation and
//! gives the ones before it a date after which they are no longer published.

use time::OffsetDateTime;

use crate::{
    Result, Store, StoreError,
    codec::{RowExt, Ts},
    on_pool,
    sealed::{Keyring, Place},
};

/// Where a key's private part lives, for sealing: keys are known by their `kid`.
pub(crate) fn place(kid: &str) -> Place<'_> {
    Place {
        table: "signing_keys",
        column: "private_key",
        row: kid,
    }
}

/// A key as stored. `private_key` is secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub generation: i64,
    pub kid: String,
    pub algorithm: String,
    /// PKCS#8.
    pub private_key: Vec<u8>,
    pub created_at: OffsetDateTime,
    /// When it stops being published; `None` while it signs.
    pub retires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("generation", &self.generation)
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retires_at", &self.retires_at)
            .finish_non_exhaustive()
    }
}

/// A key to store. Deliberately without `Debug`: it holds the private key.
#[derive(Clone)]
pub struct NewSigningKey<'a> {
    pub kid: &'a str,
    pub algorithm: &'a str,
    pub private_key: &'a [u8],
}

macro_rules! columns {
    () => {
        "generation, kid, algorithm, private_key, created_at, retires_at"
    };
}

fn key_from_row(r: &impl RowExt, keys: &Keyring) -> Result<StoredSigningKey, sqlx::Error> {
    let kid = r.text("kid")?;
    let private_key = keys
        .open(place(&kid), &r.bytes("private_key")?)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(StoredSigningKey {
        generation: r.i64("generation")?,
        kid,
        algorithm: r.text("algorithm")?,
        private_key,
        created_at: r.ts("created_at")?,
        retires_at: r.opt_ts("retires_at")?,
    })
}

/// How often a rotation retries when another node took the same generation meanwhile.
const ROTATION_TRIES: usize = 5;

impl Store {
    /// The keys still published at `now`, oldest generation first: the last one signs.
    pub async fn signing_keys(&self, now: OffsetDateTime) -> Result<Vec<StoredSigningKey>> {
        let keys = self.keys()?;
        on_pool!(self, read, |pool| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                columns!(),
                " FROM signing_keys WHERE retires_at IS NULL OR retires_at > $1 \
                 ORDER BY generation"
            ))
            .bind(Ts(now))
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| key_from_row(r, &keys))
                .collect::<Result<_, sqlx::Error>>()?)
        })
    }

    /// Stores `key` as the first key if there is none yet; whether it was stored. Safe to
    /// call from several nodes at once: exactly one key results.
    pub async fn insert_first_signing_key(&self, key: &NewSigningKey<'_>) -> Result<bool> {
        let now = freshet_model::time::now();
        let sealed = self.keys()?.seal(place(key.kid), key.private_key)?;
        on_pool!(self, write, |pool| {
            let done = sqlx::query(
                "INSERT INTO signing_keys (generation, kid, algorithm, private_key, created_at)
                 SELECT 1, $1, $2, $3, $4
                 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)
                 ON CONFLICT (generation) DO NOTHING",
            )
            .bind(key.kid)
            .bind(key.algorithm)
            .bind(sealed.as_bytes())
            .bind(Ts(now))
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Makes `key` the signing key; the keys before it stay published until `retire_at`.
    /// Keys whose publication ended are deleted. Returns the new key as stored.
    pub async fn rotate_signing_key(
        &self,
        key: &NewSigningKey<'_>,
        retire_at: OffsetDateTime,
    ) -> Result<StoredSigningKey> {
        let now = freshet_model::time::now();
        let keys = self.keys()?;
        let sealed = keys.seal(place(key.kid), key.private_key)?;
        on_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut stored = None;
            for _ in 0..ROTATION_TRIES {
                // Each statement sees what other nodes committed meanwhile (READ COMMITTED),
                // so a generation lost to a concurrent rotation is retried with the next.
                let next: i64 = sqlx::query(
                    "SELECT COALESCE(MAX(generation), 0) + 1 AS next FROM signing_keys",
                )
                .fetch_one(&mut *tx)
                .await?
                .i64("next")?;
                stored = sqlx::query(concat!(
                    "INSERT INTO signing_keys (generation, kid, algorithm, private_key, \
                     created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (generation) DO NOTHING RETURNING ",
                    columns!()
                ))
                .bind(next)
                .bind(key.kid)
                .bind(key.algorithm)
                .bind(sealed.as_bytes())
                .bind(Ts(now))
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| key_from_row(&r, &keys))
                .transpose()?;
                if stored.is_some() {
                    break;
                }
            }
            let stored = stored.ok_or(StoreError::Conflict {
                field: "generation",
            })?;
            sqlx::query(
                "UPDATE signing_keys SET retires_at = $1
                 WHERE retires_at IS NULL AND generation < $2",
            )
            .bind(Ts(retire_at))
            .bind(stored.generation)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM signing_keys WHERE retires_at IS NOT NULL AND retires_at <= $1",
            )
            .bind(Ts(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(stored)
        })
    }
}
