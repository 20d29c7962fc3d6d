//! Online backups of a SQLite store: a consistent copy taken while nodes keep writing.
//!
//! `VACUUM INTO` reads the database inside one read transaction — a snapshot, which in WAL
//! mode neither blocks the writer nor waits for it — and writes a compact, self-contained file
//! (no `-wal` beside it) that a node opens as it is. PostgreSQL has tools of its own for this
//! (`pg_dump`, base backups with WAL archiving; see docs/operations.md, "Backups").

use std::{path::Path, str::FromStr};

use sqlx::{
    ConnectOptions, Connection,
    sqlite::{SqliteConnectOptions, SqliteConnection},
};

/// Why a backup was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "freshet backup copies SQLite stores only; back up PostgreSQL with its own tools \
         (pg_dump, or base backups with WAL archiving): see docs/operations.md, \"Backups\""
    )]
    Postgres,
    #[error("unsupported database URL: use sqlite://PATH")]
    UnsupportedUrl,
    #[error("{0} already exists: freshet backup never overwrites a file")]
    Exists(String),
    #[error("there is no SQLite database at {0}")]
    NoDatabase(String),
    #[error("the backup file's path must be UTF-8")]
    NotUtf8,
    #[error("SQLite could not write the backup: {0}")]
    Sqlite(#[from] sqlx::Error),
}

/// Writes a consistent copy of the SQLite store at `url` to `file`, which must not exist yet,
/// while nodes may be using the store. Opens one read-only connection of its own: the store is
/// neither created, migrated nor otherwise changed.
pub async fn backup_sqlite(url: &str, file: &Path) -> Result<(), BackupError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(BackupError::Postgres);
    }
    if !url.starts_with("sqlite:") {
        return Err(BackupError::UnsupportedUrl);
    }
    if file.exists() {
        return Err(BackupError::Exists(file.display().to_string()));
    }
    let target = file.to_str().ok_or(BackupError::NotUtf8)?;
    let options = SqliteConnectOptions::from_str(url)?;
    let source = options.get_filename();
    if !source.is_file() {
        return Err(BackupError::NoDatabase(source.display().to_string()));
    }
    let mut conn: SqliteConnection = options
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await?;
    // SQLite itself refuses to write into a file that exists and is not empty, which closes
    // the gap between the check above and this statement.
    let done = sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut conn)
        .await;
    conn.close().await?;
    done?;
    Ok(())
}
