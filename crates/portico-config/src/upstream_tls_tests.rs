use portico_model::api::{KeyFormat, UpstreamProtocol};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::compile;

/// A CA, a client certificate it signed, and a stranger's key, as files.
struct Files {
    dir: tempfile::TempDir,
    ca: String,
    cert: String,
    key: String,
    other_key: String,
    not_pem: String,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["client.test".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    Files {
        ca: write("ca.pem", &ca.pem()),
        cert: write("client.pem", &cert.pem()),
        key: write("client.key", &key.serialize_pem()),
        other_key: write("other.key", &KeyPair::generate().unwrap().serialize_pem()),
        not_pem: write("notes.txt", "just some text\n"),
        dir,
    }
}

/// An API with `target` and the `upstream` lines in `extra`.
fn yaml(target: &str, extra: &str) -> String {
    format!(
        "apis:\n  - name: a\n    base_path: /a\n    upstream:\n      targets: [\"{target}\"]\n{extra}"
    )
}

fn errors(yaml: &str) -> Vec<String> {
    match compile(yaml) {
        Ok(_) => panic!("configuration was accepted:\n{yaml}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn https_targets_use_the_system_roots_by_default() {
    let c = compile(&yaml("https://api.example.com/v1", "")).unwrap();
    let up = &c.snapshot.apis[0].upstream;
    assert_eq!(up.protocol, UpstreamProtocol::Http1);
    let tls = up.tls.as_ref().expect("tls for an https target");
    assert!(tls.ca.is_empty() && tls.verify && tls.identity.is_none() && tls.sni.is_none());
    assert_eq!(up.targets[0].path_prefix, "/v1");
    // Plain targets have no TLS at all.
    let c = compile(&yaml("http://h", "")).unwrap();
    assert!(c.snapshot.apis[0].upstream.tls.is_none());
}

#[test]
fn every_tls_key_is_read() {
    let f = files();
    let extra = format!(
        "      protocol: http2\n      tls:\n        ca: \"{}\"\n        cert: \"{}\"\n        key: \"{}\"\n        sni: backend.internal\n        verify: true\n",
        f.ca, f.cert, f.key
    );
    let c = compile(&yaml("https://10.0.0.1:8443", &extra)).unwrap();
    let up = &c.snapshot.apis[0].upstream;
    assert_eq!(up.protocol, UpstreamProtocol::Http2);
    let tls = up.tls.as_ref().unwrap();
    assert_eq!(tls.ca.len(), 1);
    assert_eq!(tls.sni.as_deref(), Some("backend.internal"));
    let id = tls.identity.as_ref().unwrap();
    assert_eq!(id.chain.len(), 1);
    assert_eq!(id.key.format, KeyFormat::Pkcs8);
    // The key never shows in debug output.
    let debug = format!("{tls:?}");
    assert!(debug.contains("redacted") && !debug.contains(&format!("{:?}", id.key.der)));
    drop(f.dir);
}

#[test]
fn protocol_must_fit_the_targets() {
    let c = compile(&yaml("http://h", "      protocol: h2c\n")).unwrap();
    assert_eq!(c.snapshot.apis[0].upstream.protocol, UpstreamProtocol::H2c);
    let c = compile(&yaml("http://h", "      protocol: http1\n")).unwrap();
    assert_eq!(
        c.snapshot.apis[0].upstream.protocol,
        UpstreamProtocol::Http1
    );
    assert_eq!(
        errors(&yaml("http://h", "      protocol: http2\n")),
        [
            "apis[0].upstream.protocol: `http2` is HTTP/2 over TLS and needs https:// targets, but `http://h` is cleartext; use `h2c` for cleartext HTTP/2 at line 6 column 17"
        ]
    );
    assert_eq!(
        errors(&yaml("https://h", "      protocol: h2c\n")),
        [
            "apis[0].upstream.protocol: `h2c` is cleartext HTTP/2, but `https://h` uses TLS; use `http2` for HTTP/2 over TLS at line 6 column 17"
        ]
    );
    let errs = errors(&yaml("http://h", "      protocol: http3\n"));
    assert!(
        errs[0].starts_with("apis[0].upstream.protocol: unknown variant `http3`"),
        "{errs:?}"
    );
}

#[test]
fn tls_without_an_https_target_is_refused() {
    assert_eq!(
        errors(&yaml("http://h", "      tls: { verify: false }\n")),
        [
            "apis[0].upstream.tls: `tls` applies to https:// targets, and this upstream has none; remove `tls` or use https:// targets at line 6 column 12"
        ]
    );
}

#[test]
fn unknown_tls_keys_are_named() {
    let errs = errors(&yaml("https://h", "      tls: { ciphers: all }\n"));
    assert!(
        errs[0].starts_with("apis[0].upstream.tls.ciphers: unknown field `ciphers`, expected one of `ca`, `cert`, `key`, `sni`, `verify`"),
        "{errs:?}"
    );
}

#[test]
fn file_errors_name_the_key_and_line() {
    let f = files();
    let missing = f.dir.path().join("nope.pem").display().to_string();
    let extra = format!(
        "      tls:\n        ca: \"{missing}\"\n        cert: \"{}\"\n        key: \"{}\"\n        sni: \"not a name\"\n",
        f.not_pem, f.key
    );
    // Every problem at once, each at its key.
    let errs = errors(&yaml("https://h", &extra));
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!(
            "apis[0].upstream.tls.ca: cannot read the CA file `{missing}`: "
        )) && errs[0].ends_with("at line 7 column 13"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("apis[0].upstream.tls.cert: the client certificate")
            && errs[1].contains("holds no PEM certificate")
            && errs[1].ends_with("at line 8 column 15"),
        "{errs:?}"
    );
    assert_eq!(
        errs[2],
        "apis[0].upstream.tls.sni: invalid sni `not a name`: expected a DNS name or an IP address at line 10 column 14"
    );
}

#[test]
fn a_key_must_belong_to_its_certificate() {
    let f = files();
    let extra = format!(
        "      tls: {{ cert: \"{}\", key: \"{}\" }}\n",
        f.cert, f.other_key
    );
    let errs = errors(&yaml("https://h", &extra));
    assert!(
        errs[0].starts_with("apis[0].upstream.tls.key: the client key")
            && errs[0].contains("cannot be used with the certificate"),
        "{errs:?}"
    );
    // A key that is not PEM.
    let extra = format!(
        "      tls: {{ cert: \"{}\", key: \"{}\" }}\n",
        f.cert, f.not_pem
    );
    let errs = errors(&yaml("https://h", &extra));
    assert!(errs[0].contains("holds no PEM private key"), "{errs:?}");
    // A CA file that is a key.
    let extra = format!("      tls: {{ ca: \"{}\" }}\n", f.key);
    let errs = errors(&yaml("https://h", &extra));
    assert!(errs[0].contains("holds no PEM certificate"), "{errs:?}");
}

#[test]
fn cert_and_key_come_together() {
    let f = files();
    let errs = errors(&yaml(
        "https://h",
        &format!("      tls: {{ cert: \"{}\" }}\n", f.cert),
    ));
    assert!(
        errs[0].starts_with("apis[0].upstream.tls.cert: a client certificate needs its `key`"),
        "{errs:?}"
    );
    let errs = errors(&yaml(
        "https://h",
        &format!("      tls: {{ key: \"{}\" }}\n", f.key),
    ));
    assert!(
        errs[0].starts_with("apis[0].upstream.tls.key: a client key needs its `cert`"),
        "{errs:?}"
    );
}

#[test]
fn verify_false_is_accepted_but_not_with_a_ca() {
    let c = compile(&yaml("https://h", "      tls: { verify: false }\n")).unwrap();
    assert!(!c.snapshot.apis[0].upstream.tls.as_ref().unwrap().verify);
    let f = files();
    let errs = errors(&yaml(
        "https://h",
        &format!("      tls: {{ ca: \"{}\", verify: false }}\n", f.ca),
    ));
    assert!(
        errs[0].starts_with(
            "apis[0].upstream.tls.ca: `ca` has no effect with `verify: false`; remove one of them"
        ),
        "{errs:?}"
    );
}
