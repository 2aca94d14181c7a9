//! Consumer-side entities: products, developers and apps. They are compiled
//! and validated now; the policy pipeline gives them behaviour (product
//! subscriptions, credentials) in later releases.

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
}

/// OAuth client credentials of an app; the secret is kept as a SHA-256 digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    pub secret_hash: [u8; 32],
}
