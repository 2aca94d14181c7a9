//! A PostgreSQL database of a test's own, and a TCP path to it that a test
//! can cut to simulate the database going away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection as _, Executor as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The environment variable naming the test PostgreSQL's admin URL.
pub const POSTGRES_ENV: &str = "PORTICO_TEST_POSTGRES";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, dropped by [`TestDatabase::finish`].
#[derive(Debug)]
pub struct TestDatabase {
    admin: String,
    name: String,
}

impl TestDatabase {
    /// Creates a database through `PORTICO_TEST_POSTGRES` (default the local
    /// server). Panics, pointing at `scripts/test.sh`, when none answers.
    pub async fn create() -> TestDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot reach the test PostgreSQL at {POSTGRES_ENV} (default {DEFAULT_POSTGRES}): {e}\n\
                 Run the tests with `scripts/test.sh`, which starts a throwaway PostgreSQL when none is running."
            ),
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let name = format!(
            "portico_it_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        conn.close().await.ok();
        TestDatabase { admin, name }
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        self.url_via(None)
    }

    /// The database's URL through another address (a [`Cuttable`] path).
    pub fn url_via(&self, addr: Option<SocketAddr>) -> String {
        let scheme_end = self.admin.find("://").map_or(0, |i| i + 3);
        let rest = &self.admin[scheme_end..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let (user, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let host = addr.map_or(host, |a| a.to_string());
        format!("{}{user}{host}/{}", &self.admin[..scheme_end], self.name)
    }

    /// The server's address, for a [`Cuttable`] in front of it.
    pub fn server_addr(&self) -> SocketAddr {
        let url = self.url();
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .map(|a| a.rsplit_once('@').map_or(a, |(_, h)| h))
            .unwrap_or("127.0.0.1:5432");
        let host = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:5432")
        };
        host.replace("localhost", "127.0.0.1")
            .parse()
            .expect("the test PostgreSQL is addressed as IP:port")
    }

    /// Drops the database (closing what is still connected to it).
    pub async fn finish(self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
            conn.close().await.ok();
        }
    }
}

/// A TCP forwarder that a test can cut: every connection through it is
/// closed and new ones are refused until it is restored, as if the server
/// behind it had gone away.
#[derive(Debug)]
pub struct Cuttable {
    addr: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    pub async fn to(target: SocketAddr) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let cut = Arc::new(watch::channel(false).0);
        let state = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *state.borrow() {
                    drop(client);
                    continue;
                }
                let mut cut = state.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Cuttable { addr, cut, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.task.abort();
    }
}
