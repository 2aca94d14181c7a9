//! The byte format of a cache entry in Redis: a small fixed header, the
//! response head, then the body as it is (no copy into a text encoding).
//!
//! ```text
//! "PCE" 1                      magic and version
//! kind u8                      0 response, 1 variants
//! response: status u16, stored_at_ms u64, initial_age_ms u64,
//!           lifetime_ms u64, headers u16, { name_len u16, name,
//!           value_len u32, value }*, body (the rest)
//! variants: names u16, { name_len u16, name }*
//! ```
//!
//! Integers are big-endian. A value that does not decode (another version,
//! a foreign key) is treated as a miss.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use portico_model::cache::{CachedResponse, Stored};

const MAGIC: &[u8; 4] = b"PCE\x01";

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The bytes stored for `value`.
pub fn encode(value: &Stored) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(value.weight() + 64);
    out.put_slice(MAGIC);
    match value {
        Stored::Response(r) => {
            out.put_u8(0);
            out.put_u16(r.status.as_u16());
            out.put_u64(r.stored_at_ms);
            out.put_u64(millis(r.initial_age));
            out.put_u64(millis(r.lifetime));
            let n = r.headers.len().min(usize::from(u16::MAX));
            out.put_u16(n as u16);
            for (name, value) in r.headers.iter().take(n) {
                out.put_u16(name.as_str().len() as u16);
                out.put_slice(name.as_str().as_bytes());
                out.put_u32(value.len() as u32);
                out.put_slice(value.as_bytes());
            }
            out.put_slice(&r.body);
        }
        Stored::Variants(names) => {
            out.put_u8(1);
            out.put_u16(names.len() as u16);
            for name in names.iter() {
                out.put_u16(name.as_str().len() as u16);
                out.put_slice(name.as_str().as_bytes());
            }
        }
    }
    out.to_vec()
}

/// The value stored as `bytes`, or `None` when they are not an entry.
pub fn decode(bytes: Bytes) -> Option<Stored> {
    let mut b = bytes;
    if b.len() < 5 || &b[..4] != MAGIC {
        return None;
    }
    b.advance(4);
    match b.get_u8() {
        0 => {
            if b.remaining() < 2 + 8 * 3 + 2 {
                return None;
            }
            let status = StatusCode::from_u16(b.get_u16()).ok()?;
            let stored_at_ms = b.get_u64();
            let initial_age = Duration::from_millis(b.get_u64());
            let lifetime = Duration::from_millis(b.get_u64());
            let n = b.get_u16();
            let mut headers = HeaderMap::with_capacity(usize::from(n));
            for _ in 0..n {
                let name = take(&mut b, 2)?;
                let name = HeaderName::from_bytes(&name).ok()?;
                let value = take(&mut b, 4)?;
                let value = HeaderValue::from_maybe_shared(value).ok()?;
                headers.append(name, value);
            }
            Some(Stored::Response(Arc::new(CachedResponse {
                status,
                headers,
                body: b,
                stored_at_ms,
                initial_age,
                lifetime,
            })))
        }
        1 => {
            if b.remaining() < 2 {
                return None;
            }
            let n = b.get_u16();
            let mut names = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let name = take(&mut b, 2)?;
                names.push(HeaderName::from_bytes(&name).ok()?);
            }
            Some(Stored::Variants(names.into()))
        }
        _ => None,
    }
}

/// A length-prefixed field (`len_size` is 2 or 4 bytes).
fn take(b: &mut Bytes, len_size: usize) -> Option<Bytes> {
    if b.remaining() < len_size {
        return None;
    }
    let len = if len_size == 2 {
        usize::from(b.get_u16())
    } else {
        b.get_u32() as usize
    };
    if b.remaining() < len {
        return None;
    }
    Some(b.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let r = Stored::Response(Arc::new(CachedResponse {
            status: StatusCode::NOT_FOUND,
            headers,
            body: Bytes::from_static(b"hello \x00 world"),
            stored_at_ms: 1_700_000_000_123,
            initial_age: Duration::from_secs(3),
            lifetime: Duration::from_millis(60_500),
        }));
        assert_eq!(decode(Bytes::from(encode(&r))), Some(r));
        let v = Stored::Variants(vec![HeaderName::from_static("accept-language")].into());
        assert_eq!(decode(Bytes::from(encode(&v))), Some(v));
    }

    #[test]
    fn garbage_is_a_miss() {
        assert_eq!(decode(Bytes::from_static(b"")), None);
        assert_eq!(decode(Bytes::from_static(b"PCE\x02\x00")), None);
        assert_eq!(decode(Bytes::from_static(b"PCE\x01\x00\x00")), None);
        let mut bytes = encode(&Stored::Variants(
            vec![HeaderName::from_static("accept")].into(),
        ));
        bytes.truncate(bytes.len() - 2);
        assert_eq!(decode(Bytes::from(bytes)), None);
        for n in 0..64u8 {
            let junk: Vec<u8> = b"PCE\x01\x00".iter().copied().chain(0..n).collect();
            let _ = decode(Bytes::from(junk));
        }
    }
}
