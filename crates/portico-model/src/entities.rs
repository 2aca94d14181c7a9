//! Consumer-side entities: products, developers and apps. They are compiled
//! and validated now; the policy pipeline gives them behaviour (product
//! subscriptions, credentials) in later releases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A bundle of APIs that apps subscribe to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    pub name: String,
    /// Shown in the portal catalog.
    pub description: Option<String>,
    /// Names of APIs in the snapshot.
    pub apis: Vec<String>,
    pub quota: Option<Limit>,
    pub rate_limit: Option<Limit>,
    pub approval: Approval,
}

/// `limit` requests per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub limit: u64,
    pub window: Duration,
}

/// How a subscription to a product is granted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Approval {
    #[default]
    Auto,
    Manual,
}

/// An API consumer, named by e-mail address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Developer {
    pub email: String,
    pub name: String,
}

/// A developer's application and its credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub name: String,
    /// E-mail of the owning developer.
    pub developer: String,
    pub products: Vec<String>,
    /// SHA-256 digests of the API keys: the plain keys are never kept.
    pub api_key_hashes: Vec<[u8; 32]>,
    pub oauth_clients: Vec<OAuthClient>,
    /// Indexes (into `Snapshot::apis`, sorted) of the APIs this app's
    /// subscriptions include.
    pub apis: Vec<u32>,
    /// `x-portico-app` and `x-portico-developer` as sent upstream, made once.
    pub identity_headers: [http::HeaderValue; 2],
    /// For each API the app may call, sorted by API index: the product that
    /// grants it and the product limits that apply.
    pub access: Vec<ApiAccess>,
}

/// How an app reaches one API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiAccess {
    /// Index into `Snapshot::apis`.
    pub api: u32,
    /// The first of the app's products (in the app's order) that includes
    /// the API; quotas count per app and per this product.
    pub product: Arc<str>,
    /// `rate_limit` and `quota` of every subscribed product that includes
    /// the API.
    pub limits: Vec<ProductLimit>,
}

/// A product's `rate_limit` or `quota`, as it applies to one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductLimit {
    pub product: Arc<str>,
    /// The identifier in the RateLimit fields: `PRODUCT.rate_limit` or
    /// `PRODUCT.quota`.
    pub name: Arc<str>,
    pub quota: bool,
    pub limit: Limit,
}

impl App {
    /// Whether the app's subscriptions include the API at `index`.
    pub fn may_call(&self, index: u32) -> bool {
        self.apis.binary_search(&index).is_ok()
    }

    /// The app's way to the API at `index`, if it may call it.
    pub fn access(&self, index: u32) -> Option<&ApiAccess> {
        self.access
            .binary_search_by_key(&index, |a| a.api)
            .ok()
            .map(|i| &self.access[i])
    }
}

/// The consumer side of a snapshot, indexed for the request path.
#[derive(Debug, Default)]
pub struct Consumers {
    pub apps: Vec<Arc<App>>,
    /// API key digest → the app it belongs to.
    pub api_keys: HashMap<[u8; 32], ApiKeyEntry, DigestState>,
    /// Basic-auth user name → the app and its password hash.
    pub basic_users: HashMap<String, BasicUser>,
    /// OAuth client id → index into [`Consumers::apps`]; how a token's
    /// `client_id` (or `azp`) claim names its app.
    pub clients: HashMap<String, u32>,
    /// Client certificate subject or subject alternative name → index into
    /// [`Consumers::apps`], for `mtls`.
    pub certificates: HashMap<String, u32>,
}

/// A user name and password of an app, for `basic_auth`.
#[derive(Clone, Debug)]
pub struct BasicUser {
    /// Index into [`Consumers::apps`].
    pub app: u32,
    /// The argon2 hash in PHC string form (`$argon2id$v=19$…`).
    pub password_hash: Arc<str>,
}

/// One API key in the index.
#[derive(Clone, Debug)]
pub struct ApiKeyEntry {
    pub digest: [u8; 32],
    /// Index into [`Consumers::apps`].
    pub app: u32,
    /// A stable, non-secret id for logs and revocation: the first 12 hex
    /// digits of the digest.
    pub id: Arc<str>,
}

impl ApiKeyEntry {
    pub fn new(digest: [u8; 32], app: u32) -> Self {
        let id: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            digest,
            app,
            id: id.into(),
        }
    }
}

/// Hashing for keys that are already SHA-256 digests: their first eight
/// bytes are uniformly distributed, so they are the hash. Callers control
/// only lookups, never the table's contents, so there is nothing to flood.
#[derive(Clone, Copy, Debug, Default)]
pub struct DigestState;

impl std::hash::BuildHasher for DigestState {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

#[derive(Debug)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }

    fn write_usize(&mut self, _length_prefix: usize) {}
}

/// OAuth client credentials of an app; the secret is kept as a SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub secret_hash: [u8; 32],
}
