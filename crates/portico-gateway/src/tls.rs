//! TLS termination on the proxy: rustls with the aws-lc-rs provider, ALPN
//! `h2` and `http/1.1`, TLS 1.2 and 1.3 only, several certificates chosen
//! by SNI ([`crate::sni`]), and client certificates verified against the
//! configured trust store.
//!
//! The files are read into one `ServerConfig`, and [`TlsTerminator`] keeps
//! it behind an `ArcSwap` that each accepted connection loads once. A reload
//! (or the periodic file check, [`TlsTerminator::watch`]) reads the files
//! and builds a whole new configuration off the handshake path; only if
//! every file is good is it swapped in. Established connections keep the
//! session they negotiated; new handshakes get the new certificates and
//! trust store.

use std::fmt;
use std::fs;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use portico_model::node::{ClientAuth, FileSetting, Origin, TlsListener};
use portico_model::policy::ClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::sni::SniResolver;

/// One problem with a TLS file, with the place in the configuration that
/// named the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsProblem {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin.key, self.message)?;
        if let (Some(line), Some(column)) = (self.origin.line, self.origin.column) {
            write!(f, " at line {line} column {column}")?;
        }
        Ok(())
    }
}

/// Why a TLS configuration could not be built: every problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError(pub Vec<TlsProblem>);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsError {}

/// The bytes of every file a configuration was built from, in settings
/// order, to tell whether the files changed since.
type Contents = Vec<(PathBuf, Vec<u8>)>;

/// A TLS configuration built from its files, ready to be installed.
#[derive(Debug)]
pub struct PreparedTls {
    settings: TlsListener,
    contents: Contents,
    config: Arc<ServerConfig>,
}

/// Reads the files `settings` names and builds the server configuration,
/// reporting every problem at once. Blocking file I/O: call it off the
/// handshake path (a reload, `spawn_blocking`).
pub fn prepare(settings: &TlsListener) -> Result<PreparedTls, TlsError> {
    let mut problems = Vec::new();
    let mut contents = Vec::new();
    let mut read = |file: &FileSetting, problems: &mut Vec<TlsProblem>| match fs::read(&file.path) {
        Ok(bytes) => {
            contents.push((file.path.clone(), bytes.clone()));
            Some(bytes)
        }
        Err(e) => {
            problems.push(problem(
                file,
                format!("cannot read `{}`: {e}", file.path.display()),
            ));
            None
        }
    };
    let mut files = Vec::new();
    for pair in &settings.certificates {
        let cert = read(&pair.cert, &mut problems);
        let key = read(&pair.key, &mut problems);
        files.push((cert, key));
    }
    let ca = settings
        .client_ca
        .as_ref()
        .map(|ca| (ca, read(ca, &mut problems)));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

    let mut certified = Vec::new();
    for (i, (pair, (cert, key))) in settings.certificates.iter().zip(files).enumerate() {
        let (Some(cert), Some(key)) = (cert, key) else {
            continue;
        };
        match certified_key(pair, &cert, &key, &provider, i == 0) {
            Ok(k) => certified.push(k),
            Err(mut p) => problems.append(&mut p),
        }
    }
    let verifier = match ca {
        Some((file, Some(pem))) if settings.client_auth != ClientAuth::None => {
            match client_verifier(file, &pem, settings.client_auth, &provider) {
                Ok(v) => Some(v),
                Err(p) => {
                    problems.push(p);
                    None
                }
            }
        }
        _ => None,
    };
    if !problems.is_empty() {
        return Err(TlsError(problems));
    }
    let resolver = SniResolver::new(certified).ok_or_else(|| {
        TlsError(vec![TlsProblem {
            origin: Origin::default(),
            message: "a TLS listener needs a certificate".to_owned(),
        }])
    })?;
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| {
            TlsError(vec![TlsProblem {
                origin: Origin::default(),
                message: e.to_string(),
            }])
        })?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(PreparedTls {
        settings: settings.clone(),
        contents,
        config: Arc::new(config),
    })
}

fn problem(file: &FileSetting, message: String) -> TlsProblem {
    TlsProblem {
        origin: file.origin.clone(),
        message,
    }
}

fn parse_certs(file: &FileSetting, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(file, format!("`{}` is not PEM: {e}", file.path.display())))?;
    if certs.is_empty() {
        return Err(problem(
            file,
            format!("`{}` holds no certificate", file.path.display()),
        ));
    }
    Ok(certs)
}

/// One certificate chain with its key, and the DNS names SNI selects it by.
fn certified_key(
    pair: &portico_model::node::CertificateFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
    default: bool,
) -> Result<(Arc<CertifiedKey>, Vec<String>), Vec<TlsProblem>> {
    let mut problems = Vec::new();
    let chain = parse_certs(&pair.cert, cert_pem)
        .map_err(|p| problems.push(p))
        .ok();
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| {
            problems.push(problem(
                &pair.key,
                format!(
                    "`{}` holds no PEM private key: {e}",
                    pair.key.path.display()
                ),
            ))
        })
        .ok();
    let names = chain.as_ref().and_then(|chain| {
        match leaf_names(&chain[0]) {
            Ok(names) => {
                let dns: Vec<String> = names.dns;
                if !names.any {
                    problems.push(problem(
                        &pair.cert,
                        format!(
                            "the certificate in `{}` has no subject alternative name; clients check the names there",
                            pair.cert.path.display()
                        ),
                    ));
                    None
                } else if dns.is_empty() && !default {
                    problems.push(problem(
                        &pair.cert,
                        format!(
                            "the certificate in `{}` names no DNS host, so SNI can never select it; only the first certificate may do without",
                            pair.cert.path.display()
                        ),
                    ));
                    None
                } else {
                    Some(dns)
                }
            }
            Err(e) => {
                problems.push(problem(
                    &pair.cert,
                    format!("cannot parse the certificate in `{}`: {e}", pair.cert.path.display()),
                ));
                None
            }
        }
    });
    let (Some(chain), Some(key), Some(names)) = (chain, key, names) else {
        return Err(problems);
    };
    match CertifiedKey::from_der(chain, key, provider) {
        Ok(k) => Ok((Arc::new(k), names)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(vec![problem(
            &pair.key,
            format!(
                "the private key in `{}` does not match the certificate in `{}`",
                pair.key.path.display(),
                pair.cert.path.display()
            ),
        )]),
        Err(e) => Err(vec![problem(
            &pair.key,
            format!("unusable private key in `{}`: {e}", pair.key.path.display()),
        )]),
    }
}

struct LeafNames {
    /// DNS names, lower case, wildcards included.
    dns: Vec<String>,
    /// Whether the certificate has any subject alternative name.
    any: bool,
}

fn leaf_names(der: &CertificateDer<'_>) -> Result<LeafNames, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
    let mut names = LeafNames {
        dns: Vec::new(),
        any: false,
    };
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            names.any = true;
            if let GeneralName::DNSName(dns) = name {
                names.dns.push(dns.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

fn client_verifier(
    file: &FileSetting,
    pem: &[u8],
    auth: ClientAuth,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsProblem> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(file, pem)? {
        roots.add(cert).map_err(|e| {
            problem(
                file,
                format!("bad CA certificate in `{}`: {e}", file.path.display()),
            )
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = if auth == ClientAuth::Optional {
        verifier.allow_unauthenticated()
    } else {
        verifier
    };
    verifier.build().map_err(|e| {
        problem(
            file,
            format!("unusable trust store `{}`: {e}", file.path.display()),
        )
    })
}

/// The TLS side of a proxy listener: the configuration handshakes use now,
/// and what it was built from.
pub struct TlsTerminator {
    /// Loaded once per accepted connection.
    config: ArcSwap<ServerConfig>,
    /// The settings and file contents behind `config`. Taken by reloads and
    /// the file check only, never by a handshake, so that a check built
    /// from old settings cannot overwrite a reload.
    #[allow(clippy::disallowed_types)] // Control side only; see above.
    current: std::sync::Mutex<Current>,
}

struct Current {
    settings: TlsListener,
    contents: Contents,
    /// Contents that were refused, so the file check reports them once.
    refused: Option<Contents>,
}

impl fmt::Debug for TlsTerminator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTerminator").finish_non_exhaustive()
    }
}

impl TlsTerminator {
    /// Reads the files and builds the first configuration.
    pub fn new(settings: &TlsListener) -> Result<Self, TlsError> {
        Ok(Self::from_prepared(prepare(settings)?))
    }

    pub fn from_prepared(prepared: PreparedTls) -> Self {
        let PreparedTls {
            settings,
            contents,
            config,
        } = prepared;
        #[allow(clippy::disallowed_types)] // See the field.
        let current = std::sync::Mutex::new(Current {
            settings,
            contents,
            refused: None,
        });
        Self {
            config: ArcSwap::new(config),
            current,
        }
    }

    /// The acceptor for one new connection, on the configuration of now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// The settings the current configuration was built from.
    pub fn settings(&self) -> TlsListener {
        self.lock().settings.clone()
    }

    #[allow(clippy::disallowed_types)] // See the field.
    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        // A panic while holding the lock leaves consistent data: every
        // field is replaced whole.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swaps in a prepared configuration. Returns whether it differs from
    /// the one serving (settings or file contents).
    pub fn install(&self, prepared: PreparedTls) -> bool {
        let mut current = self.lock();
        let changed =
            current.settings != prepared.settings || current.contents != prepared.contents;
        if changed {
            self.config.store(prepared.config);
            current.settings = prepared.settings;
            current.contents = prepared.contents;
            current.refused = None;
        }
        changed
    }

    /// Re-reads the files of the current settings and, if their contents
    /// changed, builds and swaps in a new configuration. `Ok(false)` when
    /// nothing changed, and when the same broken contents were already
    /// reported. Blocking file I/O.
    pub fn refresh(&self) -> Result<bool, TlsError> {
        let mut current = self.lock();
        let files = file_list(&current.settings);
        let same = |contents: &Contents| {
            contents.len() == files.len()
                && contents.iter().zip(&files).all(|((path, bytes), file)| {
                    *path == file.path && fs::read(&file.path).is_ok_and(|b| b == *bytes)
                })
        };
        if same(&current.contents) {
            return Ok(false);
        }
        if current.refused.as_ref().is_some_and(same) {
            return Ok(false);
        }
        match prepare(&current.settings) {
            Ok(prepared) => {
                self.config.store(prepared.config);
                current.contents = prepared.contents;
                current.refused = None;
                Ok(true)
            }
            Err(e) => {
                current.refused = Some(
                    files
                        .iter()
                        .filter_map(|f| fs::read(&f.path).ok().map(|b| (f.path.clone(), b)))
                        .collect(),
                );
                Err(e)
            }
        }
    }

    /// Checks the files every `watch_interval` of the current settings
    /// until `stop` completes, swapping in a new configuration when they
    /// change and logging (once) when they are broken. With the check
    /// turned off it still wakes every few seconds, so that a reload can
    /// turn it on.
    pub async fn watch(self: Arc<Self>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let interval = self.settings().watch_interval;
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval.unwrap_or(Duration::from_secs(5))) => {}
            }
            if interval.is_none() {
                continue;
            }
            let this = self.clone();
            match tokio::task::spawn_blocking(move || this.refresh()).await {
                Ok(Ok(true)) => {
                    tracing::info!("TLS certificates changed on disk; new handshakes use them.")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "TLS files changed but cannot be used; still serving the previous certificates."
                ),
                Err(e) => tracing::error!(error = %e, "TLS file check failed."),
            }
        }
    }
}

/// Every file the settings name, in the order `prepare` reads them.
fn file_list(settings: &TlsListener) -> Vec<&FileSetting> {
    settings
        .certificates
        .iter()
        .flat_map(|p| [&p.cert, &p.key])
        .chain(settings.client_ca.as_ref())
        .collect()
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
