//! `upstream.protocol` and `upstream.tls`: which HTTP version the targets
//! speak, and how `https://` targets are verified.
//!
//! This is the one place where the compiler reads files: the CA, client
//! certificate and key named in `tls` are read and checked here, so that a
//! missing file, a file that is not PEM, or a key that does not match its
//! certificate is reported with the key's path and line, like any other
//! error, and the data plane receives certificates it can use as they are.

use portico_model::Target;
use portico_model::api::{ClientIdentity, KeyFormat, PrivateKey, UpstreamProtocol, UpstreamTls};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;

use crate::Diagnostic;
use crate::de::Located;
use crate::raw::{RawProtocol, RawUpstreamTls};

/// The protocol, checked against the targets' schemes.
pub(crate) fn protocol(
    raw: Option<&Located<RawProtocol>>,
    targets: &[Target],
    errors: &mut Vec<Diagnostic>,
) -> Option<UpstreamProtocol> {
    let Some(raw) = raw else {
        return Some(UpstreamProtocol::Http1);
    };
    let https = |t: &&Target| t.scheme == http::uri::Scheme::HTTPS;
    match raw.value {
        RawProtocol::Http1 => Some(UpstreamProtocol::Http1),
        RawProtocol::Http2 => match targets.iter().find(|t| !https(t)) {
            None => Some(UpstreamProtocol::Http2),
            Some(t) => {
                errors.push(raw.diag(format!(
                    "`http2` is HTTP/2 over TLS and needs https:// targets, but `{}` is cleartext; use `h2c` for cleartext HTTP/2",
                    t.url
                )));
                None
            }
        },
        RawProtocol::H2c => match targets.iter().find(https) {
            None => Some(UpstreamProtocol::H2c),
            Some(t) => {
                errors.push(raw.diag(format!(
                    "`h2c` is cleartext HTTP/2, but `{}` uses TLS; use `http2` for HTTP/2 over TLS",
                    t.url
                )));
                None
            }
        },
    }
}

/// The TLS settings for `targets`: `Ok(None)` when no target is
/// `https://`, the defaults (system roots, verification on) when `raw` is
/// absent, and `Err(())` after pushing every error found.
pub(crate) fn tls(
    raw: Option<Located<RawUpstreamTls>>,
    targets: &[Target],
    errors: &mut Vec<Diagnostic>,
) -> Result<Option<UpstreamTls>, ()> {
    let any_https = targets.iter().any(|t| t.scheme == http::uri::Scheme::HTTPS);
    let Some(raw) = raw else {
        return Ok(any_https.then(|| UpstreamTls {
            ca: Vec::new(),
            identity: None,
            sni: None,
            verify: true,
        }));
    };
    if !any_https {
        // Settings that look like protection but would protect nothing.
        errors.push(raw.diag(
            "`tls` applies to https:// targets, and this upstream has none; remove `tls` or use https:// targets",
        ));
        return Err(());
    }
    let RawUpstreamTls {
        ca,
        cert,
        key,
        sni,
        verify,
    } = raw.value;
    let before = errors.len();
    let verify_on = verify.as_ref().is_none_or(|v| v.value);

    let mut anchors = Vec::new();
    if let Some(ca) = &ca {
        if !verify_on {
            errors.push(ca.diag("`ca` has no effect with `verify: false`; remove one of them"));
        } else if let Some(certs) = read_certs(ca, "CA file", errors) {
            let mut store = RootCertStore::empty();
            for (i, c) in certs.iter().enumerate() {
                if let Err(e) = store.add(c.clone()) {
                    errors.push(ca.diag(format!(
                        "certificate {} in the CA file `{}` is not a usable trust anchor: {e}",
                        i + 1,
                        ca.value
                    )));
                }
            }
            anchors = certs.into_iter().map(|c| c.to_vec()).collect();
        }
    }

    let identity = match (&cert, &key) {
        (None, None) => None,
        (Some(c), None) => {
            errors.push(c.diag("a client certificate needs its `key`"));
            None
        }
        (None, Some(k)) => {
            errors.push(k.diag("a client key needs its `cert`"));
            None
        }
        (Some(c), Some(k)) => identity(c, k, errors),
    };

    if let Some(name) = &sni
        && ServerName::try_from(name.value.as_str()).is_err()
    {
        errors.push(name.diag(format!(
            "invalid sni `{}`: expected a DNS name or an IP address",
            name.value
        )));
    }

    if errors.len() > before {
        return Err(());
    }
    Ok(Some(UpstreamTls {
        ca: anchors,
        identity,
        sni: sni.map(|s| s.value),
        verify: verify_on,
    }))
}

fn read_file(path: &Located<String>, what: &str, errors: &mut Vec<Diagnostic>) -> Option<Vec<u8>> {
    std::fs::read(&path.value)
        .map_err(|e| {
            errors.push(path.diag(format!("cannot read the {what} `{}`: {e}", path.value)))
        })
        .ok()
}

/// The certificates in a PEM file; at least one.
fn read_certs(
    path: &Located<String>,
    what: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<Vec<CertificateDer<'static>>> {
    let pem = read_file(path, what, errors)?;
    match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if certs.is_empty() => {
            errors.push(path.diag(format!(
                "the {what} `{}` holds no PEM certificate",
                path.value
            )));
            None
        }
        Ok(certs) => Some(certs),
        Err(e) => {
            errors.push(path.diag(format!("the {what} `{}` is not valid PEM: {e}", path.value)));
            None
        }
    }
}

/// The client certificate and key, checked to belong together.
fn identity(
    cert: &Located<String>,
    key: &Located<String>,
    errors: &mut Vec<Diagnostic>,
) -> Option<ClientIdentity> {
    let chain = read_certs(cert, "client certificate", errors);
    let key_pem = read_file(key, "client key", errors)?;
    let parsed = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(e) => {
            errors.push(key.diag(format!(
                "the client key `{}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                key.value
            )));
            return None;
        }
    };
    let chain = chain?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    if let Err(e) = CertifiedKey::from_der(chain.clone(), parsed.clone_key(), &provider) {
        errors.push(key.diag(format!(
            "the client key `{}` cannot be used with the certificate `{}`: {e}",
            key.value, cert.value
        )));
        return None;
    }
    let format = match &parsed {
        PrivateKeyDer::Pkcs1(_) => KeyFormat::Pkcs1,
        PrivateKeyDer::Sec1(_) => KeyFormat::Sec1,
        PrivateKeyDer::Pkcs8(_) => KeyFormat::Pkcs8,
        _ => {
            errors.push(key.diag(format!(
                "the client key `{}` is in an encoding Portico does not support; use PKCS#8",
                key.value
            )));
            return None;
        }
    };
    Some(ClientIdentity {
        chain: chain.into_iter().map(|c| c.to_vec()).collect(),
        key: PrivateKey {
            format,
            der: parsed.secret_der().to_vec(),
        },
    })
}

#[cfg(test)]
#[path = "upstream_tls_tests.rs"]
mod tests;
