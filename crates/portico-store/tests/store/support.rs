//! Test databases: a SQLite file in a temporary directory, or a fresh
//! PostgreSQL database created through the admin URL.

use std::sync::atomic::{AtomicU32, Ordering};

use portico_store::Store;
use sqlx::{Connection as _, Executor as _, Row as _};

/// The admin URL of the test PostgreSQL.
pub const POSTGRES_ENV: &str = "PORTICO_TEST_POSTGRES";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDb {
    pub store: Store,
    /// The URL the store was opened with (to reopen it).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// Admin URL and database name, to drop it at the end.
    postgres: Option<(String, String)>,
}

fn admin_url() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/data/portico.db", dir.path().display());
        let store = Store::open(&url).await.expect("open SQLite store");
        TestDb {
            store,
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    pub async fn postgres() -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin = admin_url();
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot reach the test PostgreSQL at {POSTGRES_ENV} (default {DEFAULT_POSTGRES}): {e}\n\
                 Run the tests with `scripts/test.sh`, which starts a throwaway PostgreSQL when none is running."
            ),
        };
        let name = format!(
            "portico_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            portico_store::now_millis() % 1_000_000
        );
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        conn.close().await.ok();
        let url = with_database(&admin, &name);
        let store = Store::open(&url).await.expect("open PostgreSQL store");
        TestDb {
            store,
            url,
            _dir: None,
            postgres: Some((admin, name)),
        }
    }

    /// Closes the store and drops a PostgreSQL database.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.postgres {
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("reconnect");
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .expect("drop the test database");
        }
    }

    /// Every text value in every table, to look for secrets.
    pub async fn all_text(&self) -> Vec<String> {
        let pool = sqlx::AnyPool::connect(&self.connect_url())
            .await
            .expect("connect");
        let mut out = Vec::new();
        for table in [
            "apis",
            "api_specs",
            "products",
            "developers",
            "apps",
            "subscriptions",
            "api_keys",
            "users",
            "admin_tokens",
            "audit_log",
        ] {
            let rows = sqlx::query(&format!("SELECT * FROM {table}"))
                .fetch_all(&pool)
                .await
                .expect("read table");
            for row in rows {
                for i in 0..row.len() {
                    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(i) {
                        out.push(s);
                    }
                }
            }
        }
        pool.close().await;
        out
    }

    fn connect_url(&self) -> String {
        if self.url.starts_with("sqlite://") {
            format!("{}?mode=ro", self.url)
        } else {
            self.url.clone()
        }
    }

    /// The raw bytes of the SQLite files (database and write-ahead log).
    pub fn sqlite_bytes(&self) -> Vec<u8> {
        let Some(path) = self.url.strip_prefix("sqlite://") else {
            return Vec::new();
        };
        let mut bytes = Vec::new();
        for suffix in ["", "-wal"] {
            if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
                bytes.extend(b);
            }
        }
        bytes
    }
}
