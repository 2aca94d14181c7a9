//! Numbers written into header values and log lines on the request path
//! without the formatting machinery (`write!` costs a few hundred
//! instructions per call, most of it generic padding and dispatch this
//! output never needs). Both are built as bytes (`Vec<u8>`): the digits
//! are ASCII, and appending them to a `String` would first need them
//! checked as UTF-8.

/// Appends `n` in decimal, two digits per division (the numbers written
/// here run to ten digits: a rate limit's remaining count).
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 100 {
        let pair = 2 * (n % 100) as usize;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        at -= 2;
        let pair = 2 * n as usize;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

/// `00` to `99`, two bytes each.
const PAIRS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        table[2 * i] = b'0' + (i / 10) as u8;
        table[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_decimal() {
        let mut out = Vec::new();
        let mut check = |n: u64| {
            out.clear();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        };
        for n in [0, 7, 9, 10, 99, 100, 101, 200, 999, 1_000_000_000, u64::MAX] {
            check(n);
        }
        // Every length, at and around each power of ten.
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            check(p - 1);
            check(p);
            check(p + 1);
            p = next;
        }
        for _ in 0..10_000 {
            check(fastrand::u64(..) >> fastrand::u32(0..64));
        }
    }
}
