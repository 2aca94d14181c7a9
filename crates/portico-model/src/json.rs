//! Byte scanning shared by the JSON readers of the `validate` policy and
//! the JSON writers of the data plane (the access log): eight bytes at a
//! time in one `u64`.

/// A `u64` with every byte 1: times a byte, that byte in every lane.
pub const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Eight bytes of `bytes` from `at`, the first in the low byte; `None`
/// when fewer than eight are left.
#[inline]
pub fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The end of the run of bytes from `at` that a JSON string holds as they
/// are: the index of the next quote, backslash or control character (or
/// the end of `bytes`).
#[inline]
pub fn plain_run(bytes: &[u8], mut at: usize) -> usize {
    // The loop's shape keeps the lanes in vector registers: testing the
    // two halves as words, or walking `chunks_exact`, made the compiler
    // take the lanes one byte at a time (docs/benchmarks.md, fourteenth
    // session). Check `bench/validate.sh` after changing it.
    while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
        let special = u128::from_le_bytes(escapes_16(chunk));
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 16;
    }
    if let Some(word) = word_at(bytes, at) {
        let special = escapes(word);
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    last_run(bytes, at)
}

/// [`escapes`] of sixteen bytes: `0xFF` in the lane of each byte a JSON
/// string must escape, `0` in the others. Written lane by lane so that
/// the compiler makes it a few vector compares (SSE2 on x86-64, NEON on
/// AArch64).
#[inline]
fn escapes_16(chunk: &[u8; 16]) -> [u8; 16] {
    std::array::from_fn(|i| {
        let b = chunk[i];
        (u8::from(b == b'"') | u8::from(b == b'\\') | u8::from(b < 0x20)).wrapping_neg()
    })
}

/// [`plain_run`] where fewer than eight bytes are left from `at`, which
/// is past a whole number of plain words from the run's start. Apart, so
/// that the word loop stays small enough to inline: a text read in place
/// (a request body) rarely gets here, a text of its own (a log field)
/// always does.
#[inline(never)]
fn last_run(bytes: &[u8], at: usize) -> usize {
    let len = bytes.len();
    if at >= len {
        return at;
    }
    // Where the text is at least eight bytes long, its last eight in one
    // load, with the lanes before `at` (plain, or before the run) made
    // spaces so that they can neither match nor borrow.
    if let Some(word) = len.checked_sub(8).and_then(|start| word_at(bytes, start)) {
        let skip = 8 * (at + 8 - len);
        let kept = u64::MAX << skip;
        let special = escapes((word & kept) | ((ONES * u64::from(b' ')) & !kept));
        return match special {
            0 => len,
            _ => len - 8 + (special.trailing_zeros() / 8) as usize,
        };
    }
    // A text shorter than a word: byte by byte.
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map_or(len, |i| at + i)
}

/// Zero when no byte of `word` is one a JSON string must escape;
/// otherwise the lowest set bit is the high bit of the first such byte.
#[inline]
fn escapes(word: u64) -> u64 {
    // The high bit of a byte is set where that byte of `x` is below `n`
    // (`n` = 1: zero). A borrow can set it in bytes above a true one too,
    // never below, so the lowest set bit is exact.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
        | below(word, 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_at_the_first_byte_a_string_must_escape() {
        for (text, end) in [
            ("", 0),
            ("abc", 3),
            ("abcdefghijklmnop\"", 16),
            ("abcdefg\\hij", 7),
            ("ab\ncd", 2),
            ("\u{1f}", 0),
            ("caf\u{e9} au lait, \u{7f} and more text\t", 30),
        ] {
            assert_eq!(plain_run(text.as_bytes(), 0), end, "{text:?}");
        }
        // Every length of tail after the last whole word and chunk of
        // sixteen, and a special byte in every lane of each.
        for len in 0..40 {
            let plain = "x".repeat(len);
            assert_eq!(plain_run(plain.as_bytes(), 0), len);
            for at in 0..len {
                let mut bytes = plain.clone().into_bytes();
                bytes[at] = b'\\';
                assert_eq!(plain_run(&bytes, 0), at, "{len} {at}");
                bytes[at] = 0x1f;
                assert_eq!(plain_run(&bytes, 0), at, "{len} {at}");
                bytes[at] = b'"';
                for start in 0..=at {
                    assert_eq!(plain_run(&bytes, start), at, "{len} {at} {start}");
                }
            }
        }
        assert_eq!(plain_run(b"abc", 5), 5);
        // The last word of a text read from inside it: what comes before
        // the start (a quote, here) is not looked at, and does not make
        // the byte after it (`#`, a quote's neighbour in the arithmetic)
        // look special.
        assert_eq!(plain_run(b"0123\"#ab", 5), 8);
        assert_eq!(plain_run(b"0123\"#a\"", 5), 7);
        assert_eq!(plain_run(b"0123456\\#", 8), 9);
        // From inside the text, and across every lane of a word.
        let text = "0123456789abcdef\"";
        for start in 0..=16 {
            assert_eq!(plain_run(text.as_bytes(), start), 16);
        }
        for lane in 0..8 {
            let mut bytes = *b"xxxxxxxxxxxxxxxx";
            bytes[8 + lane] = b'"';
            assert_eq!(plain_run(&bytes, 0), 8 + lane);
        }
    }
}
