//! Request path normalisation, so that routing and the upstream see the
//! same path. Without it `/orders/v1/../../admin` would route under one API
//! and be resolved by the upstream as another, and `//orders/v1/secret`
//! would miss the protected API and reach a public one that shares its
//! upstream.
//!
//! The rules: empty segments (`//`) are merged, `.` and `..` segments,
//! plain or percent-encoded (`%2e`), are resolved (RFC 3986 §5.2.4), and a
//! `..` above the root, an encoded `/` or `\` (`%2f`, `%5c`) or a raw `\`
//! is refused. Matrix parameters (`;…` in a segment) are kept for the
//! upstream but ignored for routing, as servers that honour them do.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    AboveRoot,
    EncodedSeparator,
}

impl PathError {
    pub(crate) fn detail(&self) -> &'static str {
        match self {
            PathError::AboveRoot => "The request path climbs above the root with `..`.",
            PathError::EncodedSeparator => "The request path contains an encoded `/` or a `\\`.",
        }
    }
}

fn is_dot(seg: &str) -> bool {
    seg == "." || seg.eq_ignore_ascii_case("%2e")
}

fn is_dot_dot(seg: &str) -> bool {
    matches!(seg.len(), 2 | 4 | 6) && {
        let lower = seg.to_ascii_lowercase();
        matches!(lower.as_str(), ".." | "%2e." | ".%2e" | "%2e%2e")
    }
}

/// The path to forward: `raw` itself when it needs nothing, else the
/// normalised form.
pub(crate) fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let b = raw.as_bytes();
    let suspicious =
        b.contains(&b'\\') || b.contains(&b'%') || b.windows(2).any(|w| w == b"//" || w == b"/.");
    if !suspicious {
        return Ok(Cow::Borrowed(raw));
    }
    if b.contains(&b'\\') {
        return Err(PathError::EncodedSeparator);
    }
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err(PathError::EncodedSeparator);
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = raw.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        // Matrix parameters do not make a segment something else.
        let name = seg.split(';').next().unwrap_or("");
        if seg.is_empty() {
            trailing_slash = i == last;
            continue;
        }
        if is_dot(name) {
            trailing_slash = i == last;
            continue;
        }
        if is_dot_dot(name) {
            if out.pop().is_none() {
                return Err(PathError::AboveRoot);
            }
            trailing_slash = i == last;
            continue;
        }
        trailing_slash = false;
        out.push(seg);
    }
    let mut path = String::with_capacity(raw.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(if path == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(path)
    })
}

/// The path as routes see it: matrix parameters removed from each segment.
pub(crate) fn routing_path(path: &str) -> Cow<'_, str> {
    if !path.contains(';') {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(seg.split(';').next().unwrap_or(""));
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p).map(Cow::into_owned)
    }

    #[test]
    fn ordinary_paths_are_untouched() {
        for p in [
            "/",
            "/orders/v1",
            "/orders/v1/",
            "/a/b.c/d",
            "/a%20b",
            "/.well-known/x",
            "/a/..b/c..",
        ] {
            let expected = if p == "/.well-known/x" {
                "/.well-known/x"
            } else {
                p
            };
            assert_eq!(n(p).unwrap(), expected, "{p}");
        }
    }

    #[test]
    fn dots_and_empty_segments_are_resolved() {
        assert_eq!(n("//orders/v1/secret").unwrap(), "/orders/v1/secret");
        assert_eq!(n("/x/../orders/v1/secret").unwrap(), "/orders/v1/secret");
        assert_eq!(n("/orders/v1/%2e%2e/%2E%2e/admin").unwrap(), "/admin");
        assert_eq!(n("/a/./b/.").unwrap(), "/a/b/");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/a//").unwrap(), "/a/");
        assert_eq!(n("/a/..;x/b").unwrap(), "/b");
    }

    #[test]
    fn escapes_and_encoded_separators_are_refused() {
        assert_eq!(n("/orders/v1/../../../admin"), Err(PathError::AboveRoot));
        assert_eq!(n("/.."), Err(PathError::AboveRoot));
        assert_eq!(n("/orders%2Fv1/secret"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a\\b"), Err(PathError::EncodedSeparator));
    }

    #[test]
    fn matrix_parameters_are_ignored_for_routing() {
        assert_eq!(
            routing_path("/orders/v1;jsessionid=x/secret"),
            "/orders/v1/secret"
        );
        assert_eq!(routing_path("/a/b"), "/a/b");
    }
}
