//! The store's errors. Each variant the admin API answers differently is its
//! own variant: not found (404), already exists / in use (409), revision
//! mismatch (412), invalid input (422); everything else is a database
//! failure (503 or 500).

use crate::Kind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such entity.
    #[error("{kind} `{name}` does not exist")]
    NotFound { kind: &'static str, name: String },
    /// The change asked for the entity to be absent, and it exists.
    #[error("{kind} `{name}` already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// The entity's revision is not the one the change expected (HTTP 412).
    /// `current` is `None` when the entity does not exist.
    #[error("{kind} `{name}` is at revision {current:?}, not at the expected revision {expected}")]
    RevisionMismatch {
        kind: &'static str,
        name: String,
        expected: i64,
        current: Option<i64>,
    },
    /// Another entity still refers to this one.
    #[error("{kind} `{name}` is in use: {detail}")]
    InUse {
        kind: &'static str,
        name: String,
        detail: String,
    },
    /// The input is not something the store can keep.
    #[error("invalid {kind}: {detail}")]
    Invalid { kind: &'static str, detail: String },
    /// The operation needs PostgreSQL.
    #[error("{0} needs PostgreSQL")]
    Unsupported(&'static str),
    /// The storage URL is not one the store opens.
    #[error("invalid storage URL: {0}")]
    Url(String),
    /// The migrations could not be applied.
    #[error("cannot migrate the store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database failed or could not be reached.
    #[error("store failure: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored document is not valid JSON (the database was edited by hand).
    #[error("stored {kind} `{name}` is not a JSON document: {detail}")]
    Corrupt {
        kind: &'static str,
        name: String,
        detail: String,
    },
}

impl Error {
    pub(crate) fn invalid(kind: Kind, detail: impl Into<String>) -> Self {
        Error::Invalid {
            kind: kind.noun(),
            detail: detail.into(),
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: &str) -> Self {
        Error::NotFound {
            kind,
            name: name.to_owned(),
        }
    }

    /// Whether the error is a foreign-key violation reported by the database.
    pub(crate) fn is_foreign_key(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .is_some_and(|d| d.is_foreign_key_violation())
    }

    /// Whether the error is a unique violation reported by the database.
    pub(crate) fn is_unique(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
    }
}
