//! Certificate choice by SNI. The resolver is built once per TLS
//! configuration, off the handshake path; a handshake does at most two hash
//! lookups.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Picks the certificate whose subject alternative names match the SNI
/// host: an exact DNS name first, then a wildcard (`*.example.com` covers
/// one label, so `a.example.com` but neither `example.com` nor
/// `a.b.example.com`). The first certificate is the default, for clients
/// that send no SNI or a name no certificate has.
#[derive(Debug)]
pub(crate) struct SniResolver {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the parent domain: `example.com` for `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    /// `certs` in configuration order, each with the DNS names of its
    /// leaf. When two certificates name the same host, the first keeps it.
    pub(crate) fn new(certs: Vec<(Arc<CertifiedKey>, Vec<String>)>) -> Option<Self> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        for (key, names) in certs {
            default.get_or_insert_with(|| key.clone());
            for name in names {
                let name = normalise(&name);
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard
                        .entry(parent.to_owned())
                        .or_insert_with(|| key.clone()),
                    None => exact.entry(name).or_insert_with(|| key.clone()),
                };
            }
        }
        Some(Self {
            default: default?,
            exact,
            wildcard,
        })
    }

    pub(crate) fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(sni) = sni else {
            return &self.default;
        };
        let host = normalise(sni);
        if let Some(key) = self.exact.get(&host) {
            return key;
        }
        host.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

/// Lower case, without a trailing dot.
fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;

    /// A `CertifiedKey` told apart by its (fake) leaf bytes; the resolver
    /// never looks inside the certificate.
    fn key(tag: u8) -> Arc<CertifiedKey> {
        // An Ed25519 PKCS#8 v1 document for an all-zero seed.
        let mut pkcs8 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        pkcs8.extend([0u8; 32]);
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(
            &rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8.into()),
        )
        .unwrap();
        Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![tag])],
            signing,
        ))
    }

    fn tag(k: &Arc<CertifiedKey>) -> u8 {
        k.cert[0].as_ref()[0]
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let r = SniResolver::new(vec![
            (key(1), vec!["default.test".into()]),
            (
                key(2),
                vec!["api.example.com".into(), "*.example.com".into()],
            ),
            (
                key(3),
                vec!["Shop.Example.com".into(), "api.example.com".into()],
            ),
            (key(4), vec!["*.b.example.com".into()]),
        ])
        .unwrap();
        let pick = |sni: Option<&str>| tag(r.pick(sni));
        assert_eq!(pick(None), 1);
        assert_eq!(pick(Some("unknown.test")), 1);
        assert_eq!(pick(Some("default.test")), 1);
        // The first certificate to name a host keeps it.
        assert_eq!(pick(Some("api.example.com")), 2);
        // Exact beats wildcard; names compare case-insensitively.
        assert_eq!(pick(Some("shop.example.COM")), 3);
        assert_eq!(pick(Some("other.example.com.")), 2);
        // A wildcard covers exactly one label.
        assert_eq!(pick(Some("example.com")), 1);
        assert_eq!(pick(Some("x.b.example.com")), 4);
        assert_eq!(pick(Some("x.y.b.example.com")), 1);
    }

    #[test]
    fn no_certificate_no_resolver() {
        assert!(SniResolver::new(Vec::new()).is_none());
    }
}
