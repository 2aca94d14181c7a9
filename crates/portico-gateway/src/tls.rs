//! TLS termination on the proxy: rustls with the aws-lc-rs provider, ALPN
//! `h2` and `http/1.1`, TLS 1.2 and 1.3 only, and client certificates
//! verified against the configured trust store.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use portico_model::node::{ClientAuth, TlsListener};
use portico_model::policy::ClientCert;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// Why a TLS listener could not be set up.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    fs::read(path)
        .map_err(|e: io::Error| TlsError(format!("cannot read the {what} {}: {e}", path.display())))
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("the {what} {} is not PEM: {e:?}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "the {what} {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Builds the acceptor for `settings`, reading the files now.
pub fn acceptor(settings: &TlsListener) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certs(&settings.cert, "certificate")?;
    let key_pem = read(&settings.key, "private key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError(format!(
            "the private key {} is not PEM: {e:?}",
            settings.key.display()
        ))
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(e.to_string()))?;
    let builder = match (&settings.client_ca, settings.client_auth) {
        (Some(ca), ClientAuth::Optional | ClientAuth::Required) => {
            let mut roots = RootCertStore::empty();
            for cert in certs(ca, "client CA")? {
                roots.add(cert).map_err(|e| {
                    TlsError(format!(
                        "bad client CA certificate in {}: {e}",
                        ca.display()
                    ))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if settings.client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder
                .with_client_cert_verifier(verifier.build().map_err(|e| TlsError(e.to_string()))?)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("certificate and key do not match: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Subject and subject alternative names of a verified client certificate.
pub(crate) fn client_cert(der: &CertificateDer<'_>) -> Option<ClientCert> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => {
                    sans.push((*s).to_owned())
                }
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => sans.push(
                        std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
                    ),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(bytes);
                        sans.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Some(ClientCert {
        subject: cert.subject().to_string(),
        sans,
    })
}
