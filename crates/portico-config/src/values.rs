//! Scalar value types of the file format. Each parses from a string and
//! refuses bad input with a message that says what was expected; the
//! deserializer adds the key path and place.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// Parses a duration written as an integer and a unit: `ms`, `s`, `m`,
/// `h` or `d` (`500ms`, `30s`, `1m`, `1h`, `1d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "invalid duration `{text}`: expected an integer and a unit (ms, s, m, h, d), such as `500ms` or `30s`"
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(expected)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let millis_per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(expected()),
    };
    n.checked_mul(millis_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration `{text}` is too large"))
}

/// Parses a size written as an integer and a binary unit: `B`, `KiB`,
/// `MiB` or `GiB` (`512KiB`, `1MiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let expected = || {
        format!(
            "invalid size `{text}`: expected an integer and a unit (B, KiB, MiB, GiB), such as `512KiB`"
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(expected)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let per = match unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(expected()),
    };
    n.checked_mul(per)
        .ok_or_else(|| format!("size `{text}` is too large"))
}

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident($inner:ty), $parse:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "String")]
        pub(crate) struct $name(pub $inner);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                let parse: fn(&str) -> Result<$inner, String> = $parse;
                parse(&text).map($name)
            }
        }
    };
}

string_value!(
    /// A duration such as `30s`.
    DurationValue(Duration),
    parse_duration
);

string_value!(
    /// A size such as `1MiB`.
    #[allow(dead_code)]
    SizeValue(u64),
    parse_size
);

string_value!(
    /// An entity name: `[a-z0-9][a-z0-9-]*`, at most 63 characters.
    Name(String),
    |s| {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(s.to_owned())
        } else {
            Err(format!("invalid name `{s}`: names are 1 to 63 characters of a-z, 0-9 and `-`, starting with a letter or digit"))
        }
    }
);

string_value!(
    /// A listen address such as `0.0.0.0:8080` or `[::1]:8081`.
    ListenAddr(SocketAddr),
    |s| s.parse().map_err(|_| format!("invalid listen address `{s}`: expected IP:PORT such as `127.0.0.1:8080`"))
);

string_value!(
    /// An API base path, normalised: leading `/`, no trailing `/` but for `/`.
    BasePath(String),
    parse_base_path
);

string_value!(
    /// A host name to route on: lower case, no port, no wildcard.
    HostName(String),
    parse_host
);

fn parse_base_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("invalid base path `{s}`: it must start with `/`"));
    }
    if let Some(bad) = s.chars().find(|&c| !is_path_char(c)) {
        return Err(format!(
            "invalid base path `{s}`: `{bad}` is not allowed (no query, fragment, braces or spaces)"
        ));
    }
    let trimmed = if s.len() > 1 {
        s.trim_end_matches('/')
    } else {
        s
    };
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    if trimmed != "/"
        && trimmed[1..]
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!(
            "invalid base path `{s}`: empty, `.` and `..` segments are not allowed"
        ));
    }
    Ok(trimmed.to_owned())
}

/// RFC 3986 `pchar` plus `/`, without the `{` `}` that route syntax reserves.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%/".contains(c)
}

fn parse_host(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if lower.contains('*') {
        return Err(format!(
            "invalid host `{s}`: wildcard hosts are not supported; list each host"
        ));
    }
    let ok = !lower.is_empty()
        && lower.len() <= 253
        && lower.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(lower)
    } else {
        Err(format!(
            "invalid host `{s}`: expected a DNS name such as `api.example.com`, without port or scheme"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        for bad in [
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "10 s",
            "10sec",
            "1w",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} was accepted");
        }
        assert!(
            parse_duration("18446744073709551615d")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10B"), Ok(10));
        for bad in ["", "1", "1kb", "1 MiB", "1MB"] {
            assert!(parse_size(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn names() {
        assert!(Name::try_from("orders-v1".to_owned()).is_ok());
        assert!(Name::try_from("0rders".to_owned()).is_ok());
        for bad in ["", "-a", "Orders", "a_b", "a.b", &"a".repeat(64)] {
            assert!(
                Name::try_from(bad.to_owned()).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn base_paths() {
        assert_eq!(parse_base_path("/orders/v1/").unwrap(), "/orders/v1");
        assert_eq!(parse_base_path("/").unwrap(), "/");
        assert_eq!(parse_base_path("/a%20b").unwrap(), "/a%20b");
        for bad in [
            "orders", "/a?b", "/a#b", "/a//b", "/a/../b", "/{id}", "/a b",
        ] {
            assert!(parse_base_path(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host("API.Example.com").unwrap(), "api.example.com");
        for bad in ["", "*.example.com", "a:80", "http://a", "-a.b", "a..b"] {
            assert!(parse_host(bad).is_err(), "{bad} was accepted");
        }
    }
}
