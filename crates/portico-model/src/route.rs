//! Base-path routing: a radix tree per host, built once per snapshot.
//!
//! Each API base path `/p` is inserted as `/p`, `/p/` and `/p/{*rest}`, so
//! the tree's priority for the most specific static prefix gives the
//! longest-prefix match on whole segments (`/p` never matches `/px`).

use std::collections::HashMap;

/// Error from [`RouteTableBuilder::insert`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Another API already owns this base path on this host.
    Taken { other: u32 },
    /// The base path cannot be expressed as a route (the compiler validates
    /// base paths, so this means a bug or an unusual character).
    Invalid(String),
}

/// The outcome of a successful lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index into [`crate::Snapshot::apis`].
    pub api: u32,
}

/// Host → radix tree of base paths. Hosts are matched exactly (lower case,
/// without port); a host with no APIs of its own uses the host-less tree.
#[derive(Default)]
pub struct RouteTable {
    by_host: HashMap<Box<str>, matchit::Router<u32>>,
    any_host: matchit::Router<u32>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("hosts", &self.by_host.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl RouteTable {
    /// Finds the API for a request. `host` must already be lower case and
    /// without port; `None` means the request named no host.
    #[inline]
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<RouteMatch> {
        let tree = host
            .and_then(|h| self.by_host.get(h))
            .unwrap_or(&self.any_host);
        tree.at(path).ok().map(|m| RouteMatch { api: *m.value })
    }
}

/// Collects base paths and builds a [`RouteTable`].
#[derive(Default)]
pub struct RouteTableBuilder {
    /// (host or None, base path) → api index; detects duplicates.
    owners: HashMap<(Option<String>, String), u32>,
    entries: Vec<(Option<String>, String, u32)>,
}

impl RouteTableBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `base_path` for `api` on `host` (`None`: every host).
    pub fn insert(
        &mut self,
        host: Option<&str>,
        base_path: &str,
        api: u32,
    ) -> Result<(), RouteError> {
        let key = (host.map(str::to_owned), base_path.to_owned());
        if let Some(&other) = self.owners.get(&key) {
            return Err(RouteError::Taken { other });
        }
        // Check the path is acceptable to the tree now, so that `build`
        // cannot fail.
        let mut probe = matchit::Router::new();
        insert_prefix(&mut probe, base_path, api)?;
        self.owners.insert(key, api);
        self.entries
            .push((host.map(str::to_owned), base_path.to_owned(), api));
        Ok(())
    }

    /// Builds the table. Host-specific APIs win over host-less ones with the
    /// same base path on that host.
    pub fn build(self) -> RouteTable {
        let mut any_host = matchit::Router::new();
        let mut by_host: HashMap<Box<str>, matchit::Router<u32>> = HashMap::new();
        for (host, path, api) in &self.entries {
            match host {
                None => {
                    insert_prefix(&mut any_host, path, *api).expect("checked on insert");
                }
                Some(h) => {
                    let tree = by_host.entry(h.as_str().into()).or_default();
                    insert_prefix(tree, path, *api).expect("checked on insert");
                }
            }
        }
        for (host, tree) in &mut by_host {
            for (h, path, api) in &self.entries {
                if h.is_none()
                    && !self
                        .owners
                        .contains_key(&(Some(host.to_string()), path.clone()))
                {
                    insert_prefix(tree, path, *api).expect("checked on insert");
                }
            }
        }
        RouteTable { by_host, any_host }
    }
}

fn insert_prefix(tree: &mut matchit::Router<u32>, base: &str, api: u32) -> Result<(), RouteError> {
    let map = |e: matchit::InsertError| RouteError::Invalid(e.to_string());
    if base == "/" {
        tree.insert("/", api).map_err(map)?;
        tree.insert("/{*rest}", api).map_err(map)?;
    } else {
        tree.insert(base, api).map_err(map)?;
        tree.insert(format!("{base}/"), api).map_err(map)?;
        tree.insert(format!("{base}/{{*rest}}"), api).map_err(map)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(Option<&str>, &str)]) -> RouteTable {
        let mut b = RouteTableBuilder::new();
        for (i, (h, p)) in entries.iter().enumerate() {
            b.insert(*h, p, i as u32).unwrap();
        }
        b.build()
    }

    fn at(t: &RouteTable, host: Option<&str>, path: &str) -> Option<u32> {
        t.lookup(host, path).map(|m| m.api)
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let t = table(&[(None, "/"), (None, "/orders"), (None, "/orders/v1")]);
        assert_eq!(at(&t, None, "/"), Some(0));
        assert_eq!(at(&t, None, "/x"), Some(0));
        assert_eq!(at(&t, None, "/orders"), Some(1));
        assert_eq!(at(&t, None, "/orders/"), Some(1));
        assert_eq!(at(&t, None, "/orders/v2"), Some(1));
        assert_eq!(at(&t, None, "/ordersx"), Some(0));
        assert_eq!(at(&t, None, "/orders/v1"), Some(2));
        assert_eq!(at(&t, None, "/orders/v1/"), Some(2));
        assert_eq!(at(&t, None, "/orders/v1/a/b"), Some(2));
        assert_eq!(at(&t, None, "/orders/v10"), Some(1));
    }

    #[test]
    fn no_match_without_root() {
        let t = table(&[(None, "/a")]);
        assert_eq!(at(&t, None, "/b"), None);
        assert_eq!(at(&t, None, "/"), None);
        assert_eq!(at(&t, None, "/ab"), None);
    }

    #[test]
    fn hosts_have_their_own_tree_and_inherit_host_less_apis() {
        let t = table(&[
            (None, "/a"),
            (Some("api.example.com"), "/a"),
            (Some("api.example.com"), "/b"),
            (None, "/c"),
        ]);
        assert_eq!(at(&t, Some("api.example.com"), "/a/x"), Some(1));
        assert_eq!(at(&t, Some("api.example.com"), "/b"), Some(2));
        assert_eq!(at(&t, Some("api.example.com"), "/c"), Some(3));
        assert_eq!(at(&t, Some("other.example.com"), "/a"), Some(0));
        assert_eq!(at(&t, Some("other.example.com"), "/b"), None);
        assert_eq!(at(&t, None, "/b"), None);
    }

    /// The reference: the longest base path that is the request path or a
    /// segment-aligned prefix of it.
    fn naive(bases: &[String], path: &str) -> Option<u32> {
        bases
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.as_str() == "/"
                    || path == b.as_str()
                    || path
                        .strip_prefix(b.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
            .max_by_key(|(_, b)| b.len())
            .map(|(i, _)| i as u32)
    }

    proptest::proptest! {
        #[test]
        fn lookup_agrees_with_longest_segment_prefix(
            bases in proptest::collection::btree_set("(/[a-c]{1,2}){1,3}|/", 1..12),
            paths in proptest::collection::vec("(/[a-c]{0,3}){0,5}", 1..20),
        ) {
            let bases: Vec<String> = bases.into_iter().collect();
            let mut b = RouteTableBuilder::new();
            for (i, base) in bases.iter().enumerate() {
                b.insert(None, base, i as u32).unwrap();
            }
            let t = b.build();
            for path in paths {
                let path = if path.is_empty() { "/".to_owned() } else { path };
                proptest::prop_assert_eq!(at(&t, None, &path), naive(&bases, &path), "path {}", path);
            }
        }
    }

    #[test]
    fn same_base_path_on_same_host_is_refused() {
        let mut b = RouteTableBuilder::new();
        b.insert(Some("h"), "/a", 0).unwrap();
        assert_eq!(
            b.insert(Some("h"), "/a", 1),
            Err(RouteError::Taken { other: 0 })
        );
        b.insert(None, "/a", 2).unwrap();
        assert_eq!(b.insert(None, "/a", 3), Err(RouteError::Taken { other: 2 }));
    }
}
