//! The `keys` table: opening a database's data keys with the operator's master key at start,
//! rewrapping them under a new master key, and sealing plaintext left by older freshets.
//!
//! Opening changes nothing until the master key has proved it opens every data key: a node
//! started with the wrong key stops with [`KeyError::WrongMasterKey`] and leaves the database
//! as it found it. Only an empty table gets a first data key, inserted so that nodes starting
//! together on one PostgreSQL end with one key whichever wins.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use crate::{
    Result, Store,
    codec::{RowExt, Ts},
    on_pool,
    sealed::{KEY_LEN, KeyError, Keyring, MasterKey, Place, is_sealed, random_key},
};

/// The text columns holding secrets, each in a table whose key is the UUID column `id`.
const SEALED_TEXT: &[(&str, &str)] = &[
    ("consents", "access_token"),
    ("consents", "refresh_token"),
    ("consents", "auth_context"),
    ("webhook_endpoints", "secret"),
    ("webhook_endpoints", "previous_secret"),
    ("webhook_endpoints", "security_header"),
];

/// Rows sealed per transaction by the start-up sweep: short transactions that never hold the
/// writer long.
const SWEEP_BATCH: i64 = 200;

/// A wrapped data key as stored.
struct Wrapped {
    id: String,
    master: String,
    wrapped: String,
}

/// What opening the keys found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unlocked {
    /// A first data key was made (the database had none).
    pub created: bool,
    /// Plaintext secrets from an older freshet that were sealed now.
    pub sealed: u64,
}

/// Which data keys `master` opens, checked against every data key in `rows`.
fn open_all(master: &MasterKey, rows: &[Wrapped]) -> Result<Keyring, KeyError> {
    let fingerprint = master.fingerprint();
    // Rows come ordered by data key id, and ids begin with their creation time.
    let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    ids.dedup();
    let mut keys: Vec<(String, [u8; KEY_LEN])> = Vec::new();
    for id in ids {
        let Some(mine) = rows.iter().find(|r| r.id == id && r.master == fingerprint) else {
            let mut others: Vec<&str> = rows.iter().map(|r| r.master.as_str()).collect();
            others.sort();
            others.dedup();
            return Err(KeyError::WrongMasterKey {
                given: fingerprint,
                expected: others.join(", "),
            });
        };
        keys.push((id.to_string(), master.unwrap_data_key(id, &mine.wrapped)?));
    }
    // The newest data key seals.
    let sealing = keys.last().map(|(id, _)| id.clone()).unwrap_or_default();
    Ok(Keyring::new(sealing, keys))
}

impl Store {
    /// Opens the database's data keys with `master` (making the first one if there is none),
    /// then seals any secret still in plaintext. Every read or write of a secret needs this
    /// first. Fails without changing anything when `master` is not the key the data keys are
    /// wrapped with.
    pub async fn unlock(&mut self, master: &MasterKey) -> Result<Unlocked> {
        let mut report = Unlocked::default();
        let mut rows = self.wrapped_keys().await?;
        if rows.is_empty() {
            report.created = self.insert_first_key(master).await?;
            rows = self.wrapped_keys().await?;
        }
        let keyring = open_all(master, &rows)?;
        self.keys = Some(Arc::new(keyring));
        report.sealed = self.seal_plaintext().await?;
        Ok(report)
    }

    /// Rewraps every data key under `new`, in one transaction, and removes the wrappings by
    /// any other master key: from then on only `new` opens the database. Nodes already running
    /// hold their data keys in memory and keep working; they need `new` when they restart.
    pub async fn rewrap_keys(&self, old: &MasterKey, new: &MasterKey) -> Result<usize> {
        let rows = self.wrapped_keys().await?;
        // Proves `old` before anything is written.
        open_all(old, &rows)?;
        let (old_fp, new_fp) = (old.fingerprint(), new.fingerprint());
        let now = freshet_model::time::now();
        let mut tx = self.begin().await?;
        let mut n = 0;
        for row in rows.iter().filter(|r| r.master == old_fp) {
            let data = old.unwrap_data_key(&row.id, &row.wrapped)?;
            let wrapped = new.wrap_data_key(&row.id, &data)?;
            crate::on_tx!(tx, |conn| {
                sqlx::query(
                    "INSERT INTO keys (id, master, wrapped, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id, master) DO UPDATE SET wrapped = excluded.wrapped",
                )
                .bind(&row.id)
                .bind(&new_fp)
                .bind(&wrapped)
                .bind(Ts(now))
                .execute(&mut *conn)
                .await?;
                sqlx::query("DELETE FROM keys WHERE id = $1 AND master <> $2")
                    .bind(&row.id)
                    .bind(&new_fp)
                    .execute(&mut *conn)
                    .await?;
            });
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The data keys with the master keys wrapping them, oldest data key first.
    async fn wrapped_keys(&self) -> Result<Vec<Wrapped>> {
        on_pool!(self, write, |pool| {
            let rows = sqlx::query("SELECT id, master, wrapped FROM keys ORDER BY id, master")
                .fetch_all(pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    Ok(Wrapped {
                        id: r.text("id")?,
                        master: r.text("master")?,
                        wrapped: r.text("wrapped")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?)
        })
    }

    /// Stores a new data key wrapped by `master` unless some node stored one first.
    async fn insert_first_key(&self, master: &MasterKey) -> Result<bool> {
        let id = Uuid::now_v7().simple().to_string()[..16].to_string();
        let wrapped = master.wrap_data_key(&id, &random_key()?)?;
        let now = freshet_model::time::now();
        on_pool!(self, write, |pool| {
            let done = sqlx::query(
                "INSERT INTO keys (id, master, wrapped, created_at) \
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM keys) \
                 ON CONFLICT (id, master) DO NOTHING",
            )
            .bind(&id)
            .bind(master.fingerprint())
            .bind(&wrapped)
            .bind(Ts(now))
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Seals every secret still in plaintext, in short batches; how many.
    async fn seal_plaintext(&self) -> Result<u64> {
        let mut total = 0;
        for (table, column) in SEALED_TEXT {
            loop {
                let (found, sealed) = self.seal_text_batch(table, column).await?;
                total += sealed;
                if found == 0 {
                    break;
                }
            }
        }
        Ok(total + self.seal_signing_keys().await?)
    }

    /// Seals one batch of `table.column`: how many plaintext rows it found, and how many of
    /// them it sealed (another node starting at once may have sealed the rest).
    async fn seal_text_batch(
        &self,
        table: &'static str,
        column: &'static str,
    ) -> Result<(usize, u64)> {
        let keys = self.keys()?;
        let select = format!(
            "SELECT id, {column} AS v FROM {table} \
             WHERE {column} IS NOT NULL AND substr({column}, 1, 3) <> 'v1:' LIMIT {SWEEP_BATCH}"
        );
        let update = format!("UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3");
        let mut tx = self.begin().await?;
        let n = crate::on_tx!(tx, |conn| {
            let rows = sqlx::query(AssertSqlSafe(select))
                .fetch_all(&mut *conn)
                .await?;
            let mut sealed_here = 0;
            for r in &rows {
                let id = r.uuid("id")?;
                let plain: String = r.try_get("v")?;
                let row = id.to_string();
                let sealed = keys.seal(
                    Place {
                        table,
                        column,
                        row: &row,
                    },
                    plain.as_bytes(),
                )?;
                // Only if unchanged meanwhile: a newer value was written sealed.
                sealed_here += sqlx::query(AssertSqlSafe(update.clone()))
                    .bind(sealed)
                    .bind(id)
                    .bind(&plain)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            }
            (rows.len(), sealed_here)
        });
        tx.commit().await?;
        Ok(n)
    }

    /// Seals signing keys stored as plain PKCS#8 (a handful of rows).
    async fn seal_signing_keys(&self) -> Result<u64> {
        let keys = self.keys()?;
        let mut tx = self.begin().await?;
        let n = crate::on_tx!(tx, |conn| {
            let rows = sqlx::query("SELECT kid, private_key FROM signing_keys")
                .fetch_all(&mut *conn)
                .await?;
            let mut n = 0;
            for r in &rows {
                let (kid, der) = (r.text("kid")?, r.bytes("private_key")?);
                if is_sealed(&der) {
                    continue;
                }
                let sealed = keys.seal(crate::signing_keys::place(&kid), &der)?;
                sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2")
                    .bind(sealed.into_bytes())
                    .bind(&kid)
                    .execute(&mut *conn)
                    .await?;
                n += 1;
            }
            n
        });
        tx.commit().await?;
        Ok(n)
    }

    /// The data keys, for sealing and opening; an error before [`Store::unlock`].
    pub(crate) fn keys(&self) -> Result<Arc<Keyring>, KeyError> {
        self.keys.clone().ok_or(KeyError::Locked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, master: &MasterKey) -> Wrapped {
        Wrapped {
            id: id.into(),
            master: master.fingerprint(),
            wrapped: master.wrap_data_key(id, &random_key().unwrap()).unwrap(),
        }
    }

    #[test]
    fn only_a_master_key_wrapping_every_data_key_opens_them() {
        let (a, b) = (
            MasterKey::generate().unwrap(),
            MasterKey::generate().unwrap(),
        );
        assert!(open_all(&a, &[row("d1", &a)]).is_ok());
        assert!(open_all(&a, &[]).is_ok());
        match open_all(&b, &[row("d1", &a)]) {
            Err(KeyError::WrongMasterKey { given, expected }) => {
                assert_eq!(given, b.fingerprint());
                assert_eq!(expected, a.fingerprint());
            }
            other => panic!("{other:?}"),
        }
        // During nothing but a broken rotation would one key lack a wrapping: refused too.
        assert!(open_all(&a, &[row("d1", &a), row("d2", &b)]).is_err());
        let forged = Wrapped {
            master: a.fingerprint(),
            ..row("d1", &b)
        };
        assert!(matches!(open_all(&a, &[forged]), Err(KeyError::Unwrap(_))));
    }
}
