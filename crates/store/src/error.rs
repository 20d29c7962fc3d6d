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
    #[error(transparent)]
    Database(#[from] sqlx::Error),
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
        Self::Database(err)
    }
}
