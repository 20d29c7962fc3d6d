//! Store errors.

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; `field` names the client-facing field at fault.
    #[error("another record already has this {field}")]
    Conflict { field: &'static str },
    /// The database URL names an engine freshet does not support.
    #[error("unsupported database URL: use sqlite://PATH or postgres://…")]
    UnsupportedUrl,
    /// A migration could not be applied, or an applied one has changed since.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value could not be read back into its type.
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// The database cannot be reached or cannot take the work now (connection refused or
    /// lost, no connection free in time, server shutting down, disk full, locked): the call
    /// may succeed if tried again later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The master key, a data key or a sealed value is wrong (see [`crate::sealed`]).
    #[error(transparent)]
    Keys(#[from] crate::sealed::KeyError),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Database(e)
        }
    }
}

/// Whether `e` says the database is out of reach or out of capacity rather than that the
/// statement is wrong.
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
            db.code().is_some_and(|c| unavailable_code(&c, sqlite))
        }
        _ => false,
    }
}

/// SQLite's result codes of a busy, locked or full database (numeric; extended codes keep the
/// primary one in the low byte), and PostgreSQL's SQLSTATEs of an unreachable or overloaded
/// server.
fn unavailable_code(code: &str, sqlite: bool) -> bool {
    if sqlite {
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
        code.parse::<u32>()
            .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14))
    } else {
        // connection exception; admin or crash shutdown, cannot connect now; insufficient
        // resources (disk full, out of memory, too many connections)
        code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
    }
}

impl StoreError {
    /// Maps a unique violation to [`StoreError::Conflict`] when its message or constraint name
    /// mentions `column`; other errors pass through. SQLite reports columns
    /// (`UNIQUE constraint failed: customers.application_id, customers.external_id`),
    /// PostgreSQL constraint names (`customers_external_id_unique`): both contain the column.
    pub(crate) fn on_unique(err: sqlx::Error, column: &str, field: &'static str) -> Self {
        if let sqlx::Error::Database(db) = &err {
            let names_column = db.constraint().is_some_and(|c| c.contains(column))
                || db.message().contains(column);
            if db.is_unique_violation() && names_column {
                return Self::Conflict { field };
            }
        }
        err.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_statement_errors_are_not() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        ] {
            assert!(matches!(StoreError::from(e), StoreError::Unavailable(_)));
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
        ] {
            assert!(matches!(StoreError::from(e), StoreError::Database(_)));
        }
        for code in ["08006", "08001", "57P01", "57P03", "53300", "53100"] {
            assert!(unavailable_code(code, false), "{code}");
        }
        for code in ["23505", "22021", "42P01", "40001"] {
            assert!(!unavailable_code(code, false), "{code}");
        }
        for code in ["5", "13", "517", "266", "6"] {
            assert!(unavailable_code(code, true), "{code}");
        }
        for code in ["19", "1", "2067", "787"] {
            assert!(!unavailable_code(code, true), "{code}");
        }
    }
}
