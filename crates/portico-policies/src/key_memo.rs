//! The SHA-256 digests of API keys this thread has recently found in a
//! snapshot, so that a key sent again is looked up without hashing it
//! again: one SHA-256 block costs about 2,300 instructions here (no SHA
//! extensions on the CPU), a quarter of what `api_key` + `rate_limit` add
//! to a request.
//!
//! The memo maps a 128-bit tag of the key to its digest. The tag is
//! SipHash-2-4 with a 128-bit output under a key drawn from the operating
//! system for each thread, a keyed function nobody outside the process can
//! compute: a different API key sharing a memorised key's tag is a 2^-128
//! chance per attempt, not something to search for. The digest found is then looked up in the
//! snapshot exactly as a freshly computed one would be, so a key revoked
//! or moved to another app since it was memorised is answered by the
//! snapshot of the request, never by the memo. Only keys that were found
//! are memorised; a client sending made-up keys pays the full hash for
//! each and cannot push the real ones out faster than one slot per
//! request. The plaintext key is never kept.
//!
//! The memo is a direct-mapped table of [`SLOTS`] entries per thread
//! (48 KiB once a keyed request has been seen); a key whose slot another
//! key took is hashed again and takes the slot back.

use std::cell::RefCell;
use std::hash::Hasher as _;

use siphasher::sip128::{Hasher128 as _, SipHasher24};
use subtle::ConstantTimeEq;

/// Entries per thread. A power of two: the slot is the tag's low bits.
const SLOTS: usize = 1024;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// The key's tag; zero while the slot is free (a tag is zero only by
    /// a 2^-128 chance, and then merely misses).
    tag: u128,
    digest: [u8; 32],
}

struct Memo {
    /// The tag's function, keyed; `None` where the operating system gave
    /// no random key, and then nothing is memorised.
    tagger: Option<SipHasher24>,
    /// Empty until the first key is memorised.
    slots: Vec<Slot>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo {
        tagger: random_key().map(|[k0, k1]| SipHasher24::new_with_keys(k0, k1)),
        slots: Vec::new(),
    });
}

fn random_key() -> Option<[u64; 2]> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    let (k0, k1) = bytes.split_at(8);
    Some([
        u64::from_le_bytes(k0.try_into().ok()?),
        u64::from_le_bytes(k1.try_into().ok()?),
    ])
}

/// The digest of a presented key, and what [`KeyDigest::found`] needs to
/// memorise it.
pub(crate) struct KeyDigest {
    pub digest: [u8; 32],
    /// The tag, when the digest was computed now rather than remembered.
    computed: Option<u128>,
}

impl KeyDigest {
    /// The snapshot knows this digest: memorise it for the next request.
    pub(crate) fn found(&self) {
        let Some(tag) = self.computed else {
            return;
        };
        let _ = MEMO.try_with(|memo| {
            let Ok(mut memo) = memo.try_borrow_mut() else {
                return;
            };
            if memo.slots.is_empty() {
                memo.slots = vec![Slot::default(); SLOTS];
            }
            memo.slots[slot_of(&tag)] = Slot {
                tag,
                digest: self.digest,
            };
        });
    }

    /// Whether the digest came from the memo (for the tests).
    #[cfg(test)]
    fn remembered(&self) -> bool {
        self.computed.is_none()
    }
}

/// SHA-256 of `key`, from the memo where this thread has it.
pub(crate) fn digest(key: &[u8]) -> KeyDigest {
    let memo = MEMO
        .try_with(|memo| {
            let memo = memo.try_borrow().ok()?;
            let tag = tag(memo.tagger.as_ref()?, key);
            let hit = memo
                .slots
                .get(slot_of(&tag))
                .filter(|slot| bool::from(slot.tag.ct_eq(&tag)))
                .map(|slot| slot.digest);
            Some((tag, hit))
        })
        .ok()
        .flatten();
    match memo {
        Some((_, Some(digest))) => KeyDigest {
            digest,
            computed: None,
        },
        // Without the thread's memo (while the thread exits, or with no
        // random key) nothing is memorised; nor is a zero tag, which marks
        // a free slot.
        missed => KeyDigest {
            digest: sha256(key),
            computed: missed.map(|(tag, _)| tag).filter(|t| *t != 0),
        },
    }
}

fn tag(tagger: &SipHasher24, key: &[u8]) -> u128 {
    let mut h = *tagger;
    // SipHash folds the length into its last block, so keys that differ
    // only in trailing bytes still differ.
    h.write(key);
    h.finish128().as_u128()
}

fn slot_of(tag: &u128) -> usize {
    (*tag % SLOTS as u128) as usize
}

fn sha256(key: &[u8]) -> [u8; 32] {
    let mut digest = [0u8; 32];
    // aws-lc's SHA-256 uses the CPU's SHA extensions where there are some.
    digest.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key).as_ref());
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn reference(key: &[u8]) -> [u8; 32] {
        Sha256::digest(key).into()
    }

    #[test]
    fn a_found_key_is_remembered_and_others_are_not() {
        let key = b"memo-test-key-found-0001";
        let first = digest(key);
        assert_eq!(first.digest, reference(key));
        assert!(!first.remembered());
        // Not found in a snapshot: not memorised.
        assert!(!digest(key).remembered());
        first.found();
        let again = digest(key);
        assert!(again.remembered());
        assert_eq!(again.digest, reference(key));
        // A key that differs only by a trailing byte is its own key.
        let longer = digest(b"memo-test-key-found-0001\0");
        assert!(!longer.remembered());
        assert_eq!(longer.digest, reference(b"memo-test-key-found-0001\0"));
    }

    /// More keys than slots, each memorised: whichever the memo still
    /// holds or has lost, every digest is the key's own.
    #[test]
    fn digests_are_right_whatever_the_slots_hold() {
        let keys: Vec<Vec<u8>> = (0..SLOTS * 3)
            .map(|i| format!("memo-test-many-{i:05}").into_bytes())
            .collect();
        for key in &keys {
            digest(key).found();
        }
        let mut remembered = 0;
        for key in &keys {
            let d = digest(key);
            assert_eq!(d.digest, reference(key), "{}", String::from_utf8_lossy(key));
            remembered += usize::from(d.remembered());
        }
        assert!(remembered > 0 && remembered <= SLOTS, "{remembered}");
        // A key whose slot was taken is hashed again and takes it back.
        for key in &keys {
            digest(key).found();
            assert!(digest(key).remembered());
        }
    }
}
