//! Secrets made by the store: API keys and admin tokens. Only their SHA-256
//! digest is ever written; the plain text is returned once in a [`Secret`],
//! whose `Debug` does not show it.

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A plain-text secret, shown to its owner once.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(crate) fn new(s: String) -> Self {
        Self(s)
    }

    /// The plain text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `n` bytes from the system's CSPRNG (aws-lc).
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // aws-lc's generator fails only when the OS has no entropy source, and
    // no secret can be made safely without one.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator works");
    bytes
}

/// 32 random bytes, base64url without padding (43 characters).
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

/// `n` random lower-case letters and digits, for visible key prefixes.
pub(crate) fn random_alnum(n: usize) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    random::<16>()
        .iter()
        .take(n)
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect()
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Lower-case hex of the SHA-256 of `text`: how digests and content hashes
/// are stored.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex(&sha256(text.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Compares two stored digests in constant time.
pub(crate) fn digests_equal(a: &str, b: &str) -> bool {
    verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The non-secret id of a credential: the first 12 hex digits of its digest,
/// the same id the gateway's key index logs (`ApiKeyEntry::id`).
pub(crate) fn id_of(digest_hex: &str) -> String {
    digest_hex[..12].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = Secret::new("pk_abcdefgh_secret".into());
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(s.expose(), "pk_abcdefgh_secret");
    }

    #[test]
    fn random_values_differ_and_have_their_shape() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let p = random_alnum(8);
        assert_eq!(p.len(), 8);
        assert!(
            p.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn digests_are_lower_hex_sha256() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digests_equal(&sha256_hex("x"), &sha256_hex("x")));
        assert!(!digests_equal(&sha256_hex("x"), &sha256_hex("y")));
        assert_eq!(id_of(&sha256_hex("abc")), "ba7816bf8f01");
    }
}
