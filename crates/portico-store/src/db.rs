//! Opening the store: the URL, the pool, per-connection settings and the
//! migrations. Every other module runs its SQL through [`Store::pool`] or a
//! transaction from [`Store::begin`], the same text on both databases.

use std::fmt;
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor as _, Transaction};

use crate::Error;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store: a connection pool and which database it reaches. Cheap to
/// clone; clones share the pool.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// The URL as given, for the PostgreSQL listener. Never logged: it may
    /// hold a password.
    pub(crate) url: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `url` and applies any migration it lacks.
    ///
    /// - `sqlite://PATH` (the configuration's default form): the file is
    ///   created with its directory if missing; WAL journal, foreign keys on,
    ///   a 5 s busy timeout.
    /// - `postgres://…` or `postgresql://…`: the database must exist.
    ///
    /// Opening twice is harmless: applied migrations are recorded in
    /// `_sqlx_migrations` and skipped.
    pub async fn open(url: &str) -> Result<Store, Error> {
        sqlx::any::install_default_drivers();
        let (backend, connect_url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or_default();
            if file.is_empty() {
                return Err(Error::Url("`sqlite://` needs a file path".into()));
            }
            if let Some(dir) = Path::new(file)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::Url(format!(
                        "cannot create the data directory `{}`: {e}",
                        dir.display()
                    ))
                })?;
            }
            let connect = if path.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, connect)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(Error::Url(
                "expected `sqlite://PATH`, `postgres://…` or `postgresql://…`".into(),
            ));
        };
        let options = AnyConnectOptions::from_str(&connect_url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Store {
            pool,
            backend,
            url: url.to_owned(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool; waits for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout
    /// instead of one failing when it upgrades a read lock.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Any>, Error> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// A read-only transaction that sees one consistent state.
    pub(crate) async fn begin_read(&self) -> Result<Transaction<'static, Any>, Error> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }
}
