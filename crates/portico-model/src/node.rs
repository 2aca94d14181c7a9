//! Settings of the node itself (listeners, storage, logging), as opposed to
//! the entities it serves. Changing these needs a restart; entities reload.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Listener addresses and node-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    pub proxy_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub portal_listen: SocketAddr,
    pub portal_title: String,
    pub storage: Storage,
    pub redis: Option<String>,
    pub access_log: AccessLog,
    /// Runtime worker threads; `None` means one per core.
    pub workers: Option<usize>,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            proxy_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            portal_listen: SocketAddr::from(([0, 0, 0, 0], 8082)),
            portal_title: "Portico".to_owned(),
            storage: Storage::Sqlite(PathBuf::from("portico-data/portico.db")),
            redis: None,
            access_log: AccessLog::Stdout,
            workers: None,
        }
    }
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
