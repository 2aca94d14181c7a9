//! Settings of the node itself (listeners, storage, logging), as opposed to
//! the entities it serves. Changing these needs a restart, except the TLS
//! files (certificates, keys, trust store), which reload with the entities.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Listener addresses and node-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    pub proxy_listen: SocketAddr,
    /// A second proxy listener speaking TLS, if configured.
    pub proxy_tls: Option<TlsListener>,
    pub admin_listen: SocketAddr,
    pub portal_listen: SocketAddr,
    pub portal_title: String,
    pub storage: Storage,
    /// Shared counters; `None`: in-process counters.
    pub redis: Option<RedisSettings>,
    pub access_log: AccessLog,
    /// Runtime worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// How long shutdown waits for in-flight exchanges before closing.
    pub shutdown_timeout: std::time::Duration,
    /// Client connections open at once, across the proxy listeners; more
    /// are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time a client has to send a complete request head (slowloris).
    pub header_timeout: std::time::Duration,
    /// Bytes the in-process response cache holds at most
    /// (`server.cache.max_size`).
    pub cache_max_size: u64,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            proxy_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            proxy_tls: None,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            portal_listen: SocketAddr::from(([0, 0, 0, 0], 8082)),
            portal_title: "Portico".to_owned(),
            storage: Storage::Sqlite(PathBuf::from("portico-data/portico.db")),
            redis: None,
            access_log: AccessLog::Stdout,
            workers: None,
            shutdown_timeout: std::time::Duration::from_secs(30),
            max_connections: 10_000,
            header_timeout: std::time::Duration::from_secs(30),
            cache_max_size: crate::cache::DEFAULT_CACHE_MAX_SIZE,
        }
    }
}

/// The Redis server that holds shared counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://HOST[:PORT][/DB]`.
    pub url: String,
    /// What limits do while Redis is unreachable.
    pub failure: crate::limits::RedisFailure,
    /// Put in front of every key, so several deployments can share a server.
    pub key_prefix: String,
    /// How long one Redis call may take before it counts as a failure.
    pub timeout: std::time::Duration,
}

/// Default `redis.timeout`.
pub const DEFAULT_REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);
/// Default `redis.key_prefix`.
pub const DEFAULT_REDIS_PREFIX: &str = "portico:";

/// A TLS proxy listener: certificates, keys and, for client certificates,
/// the trust store. The files are read by the gateway, at start and at
/// every reload; the compiler only records where each was named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListener {
    pub listen: SocketAddr,
    /// Certificate and key pairs, never empty. A handshake gets the first
    /// whose certificate names the SNI host; the first pair is the default
    /// when the client sends no SNI or a name no certificate has.
    pub certificates: Vec<CertificateFiles>,
    /// PEM CA certificates that client certificates must chain to.
    pub client_ca: Option<FileSetting>,
    pub client_auth: ClientAuth,
    /// How often the files are re-read to pick up a rotation without a
    /// reload; `None` turns the check off.
    pub watch_interval: Option<std::time::Duration>,
}

/// One certificate chain and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    /// PEM certificate chain, leaf first.
    pub cert: FileSetting,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: FileSetting,
}

/// A file named in the configuration, with the place that named it, so
/// problems found when it is read (after compiling) still point at the key
/// and line, like compiler diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSetting {
    pub path: PathBuf,
    pub origin: Origin,
}

/// Where a setting was written: its key path and 1-based line and column.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub key: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, " (line {line} column {column})")?;
        }
        Ok(())
    }
}

/// Whether the TLS listener asks for client certificates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates.
    #[default]
    None,
    /// Verified when sent; APIs with the `mtls` policy require one.
    Optional,
    /// Every connection must present a valid client certificate.
    Required,
}

/// Where entities are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// An SQLite file; its directory is the node's data directory.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, for clusters.
    Postgres(String),
}

impl Storage {
    /// The directory that holds the node's local state, if it has one.
    pub fn data_dir(&self) -> Option<PathBuf> {
        match self {
            Storage::Sqlite(file) => Some(
                file.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), PathBuf::from),
            ),
            Storage::Postgres(_) => None,
        }
    }
}

/// Where the access log goes: one JSON line per exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AccessLog {
    #[default]
    Stdout,
    File(PathBuf),
    Off,
}
