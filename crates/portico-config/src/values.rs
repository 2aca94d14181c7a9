//! Scalar value types of the file format. Each parses from a string and
//! refuses bad input with a message that says what was expected; the
//! deserializer adds the key path and place.

use std::net::SocketAddr;
use std::time::Duration;

use portico_model::units::{parse_duration, parse_size};
use serde::Deserialize;

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
    /// A percentage such as `20%`, from 0 to 100.
    Percent(u32),
    |s| {
        s.strip_suffix('%')
            .and_then(|n| n.trim().parse::<u32>().ok())
            .filter(|n| *n <= 100)
            .ok_or_else(|| format!("invalid percentage `{s}`: expected a whole number from 0% to 100%"))
    }
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

pub(crate) fn parse_base_path(s: &str) -> Result<String, String> {
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
