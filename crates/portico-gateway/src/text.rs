//! Numbers written into header values and log lines on the request path
//! without the formatting machinery (`write!` costs a few hundred
//! instructions per call, most of it generic padding and dispatch this
//! output never needs). Both are built as bytes (`Vec<u8>`): the digits
//! are ASCII, and appending them to a `String` would first need them
//! checked as UTF-8.

/// Appends `n` in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_decimal() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 200, 1_000_000_000, u64::MAX] {
            out.clear();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
