//! Operation routing inside an API that has a spec: a radix tree of the
//! spec's path templates, relative to the API's base path, built once per
//! snapshot.
//!
//! A lookup answers with the operation, with "no such path" (404) or with
//! "path known, method not" (405, with the `Allow` value prepared when the
//! table was built). Template variables match one whole segment or the part
//! of a segment between a static prefix and suffix (`/img-{id}.png`); their
//! values are checked later, by validation.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderValue, Method};

/// One operation of an API's spec, as the data plane knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiOperation {
    /// Index in [`OperationTable::operations`], in spec order.
    pub index: u32,
    pub id: Option<Arc<str>>,
    pub method: Method,
    /// The template as the spec writes it (`/pets/{petId}`).
    pub path: Arc<str>,
    /// What logs and metrics call it: the `operationId`, or
    /// `METHOD template` when the spec gives none.
    pub label: Arc<str>,
}

/// The outcome of [`OperationTable::lookup`].
#[derive(Debug, PartialEq, Eq)]
pub enum OperationMatch<'a> {
    Found(&'a ApiOperation),
    /// No template matches the path.
    NoPath,
    /// A template matches, but it declares no operation for the method.
    NoMethod {
        allow: &'a HeaderValue,
    },
}

/// Error from [`OperationTableBuilder::insert`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationError {
    /// The same method on the same template (or one that differs only in
    /// variable names) was inserted before.
    Duplicate { other: u32 },
    /// The template cannot be routed: two variables in one segment, or a
    /// conflict with another template's variable.
    Invalid(String),
}

#[derive(Clone, Debug)]
struct PathOps {
    /// Declared methods and their operations, in insertion order.
    methods: Vec<(Method, u32)>,
    allow: HeaderValue,
}

/// The operations of one API and the tree that finds them.
#[derive(Clone)]
pub struct OperationTable {
    operations: Vec<ApiOperation>,
    paths: Vec<PathOps>,
    tree: matchit::Router<u32>,
}

impl std::fmt::Debug for OperationTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationTable")
            .field("operations", &self.operations.len())
            .field("paths", &self.paths.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for OperationTable {
    /// The tree follows from the operations.
    fn eq(&self, other: &Self) -> bool {
        self.operations == other.operations
    }
}

impl Eq for OperationTable {}

impl OperationTable {
    /// Finds the operation for `method` on `path`, the request path with
    /// the API's base path removed (`""` is the base path itself, matched
    /// as `/`). `HEAD` falls back to the `GET` operation of the path when
    /// the spec declares no `HEAD`.
    #[inline]
    pub fn lookup(&self, method: &Method, path: &str) -> OperationMatch<'_> {
        let path = if path.is_empty() { "/" } else { path };
        let Ok(m) = self.tree.at(path) else {
            return OperationMatch::NoPath;
        };
        let ops = &self.paths[*m.value as usize];
        let find = |wanted: &Method| {
            ops.methods
                .iter()
                .find(|(declared, _)| declared == wanted)
                .map(|(_, i)| &self.operations[*i as usize])
        };
        let found = find(method).or_else(|| {
            if method == Method::HEAD {
                find(&Method::GET)
            } else {
                None
            }
        });
        match found {
            Some(op) => OperationMatch::Found(op),
            None => OperationMatch::NoMethod { allow: &ops.allow },
        }
    }

    /// Every operation, in spec order.
    pub fn operations(&self) -> &[ApiOperation] {
        &self.operations
    }

    pub fn get(&self, index: u32) -> Option<&ApiOperation> {
        self.operations.get(index as usize)
    }

    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

/// Collects operations and builds an [`OperationTable`].
#[derive(Default)]
pub struct OperationTableBuilder {
    operations: Vec<ApiOperation>,
    paths: Vec<PathOps>,
    /// Template in the tree's syntax → index in `paths`.
    by_route: HashMap<String, u32>,
    tree: matchit::Router<u32>,
}

impl OperationTableBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `method` on `template`; returns the operation's index.
    pub fn insert(
        &mut self,
        template: &str,
        method: Method,
        id: Option<&str>,
    ) -> Result<u32, OperationError> {
        let route = tree_route(template).map_err(OperationError::Invalid)?;
        let path_index = match self.by_route.get(&route) {
            Some(&p) => {
                if let Some((_, other)) = self.paths[p as usize]
                    .methods
                    .iter()
                    .find(|(m, _)| *m == method)
                {
                    return Err(OperationError::Duplicate { other: *other });
                }
                p
            }
            None => {
                let p = u32::try_from(self.paths.len())
                    .map_err(|_| OperationError::Invalid("too many paths".into()))?;
                self.tree
                    .insert(route.clone(), p)
                    .map_err(|e| OperationError::Invalid(e.to_string()))?;
                self.by_route.insert(route, p);
                self.paths.push(PathOps {
                    methods: Vec::new(),
                    allow: HeaderValue::from_static(""),
                });
                p
            }
        };
        let index = u32::try_from(self.operations.len())
            .map_err(|_| OperationError::Invalid("too many operations".into()))?;
        let label: Arc<str> = match id {
            Some(id) => id.into(),
            None => format!("{method} {template}").into(),
        };
        self.paths[path_index as usize]
            .methods
            .push((method.clone(), index));
        self.operations.push(ApiOperation {
            index,
            id: id.map(Arc::from),
            method,
            path: template.into(),
            label,
        });
        Ok(index)
    }

    pub fn build(mut self) -> OperationTable {
        for ops in &mut self.paths {
            ops.allow = allow_value(&ops.methods);
        }
        OperationTable {
            operations: self.operations,
            paths: self.paths,
            tree: self.tree,
        }
    }
}

/// The `Allow` field: declared methods in a fixed order, with `HEAD`
/// wherever `GET` is (it is routed to the `GET` operation).
fn allow_value(methods: &[(Method, u32)]) -> HeaderValue {
    const ORDER: [Method; 8] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ];
    let has = |m: &Method| methods.iter().any(|(d, _)| d == m);
    let names: Vec<&str> = ORDER
        .iter()
        .filter(|m| has(m) || (**m == Method::HEAD && has(&Method::GET)))
        .map(Method::as_str)
        .collect();
    HeaderValue::from_str(&names.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A spec template in matchit's syntax. Variables are renamed by position
/// (`p0`, `p1`, …): two templates that share a prefix have the same number
/// of variables in it, so the same position always has the same name and
/// `/a/{id}` and `/a/{name}/b` can live in one tree.
fn tree_route(template: &str) -> Result<String, String> {
    if !template.starts_with('/') {
        return Err(format!("path `{template}` must start with `/`"));
    }
    let mut out = String::with_capacity(template.len());
    let mut n = 0;
    for (i, segment) in template.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let vars = segment.matches('{').count();
        if vars > 1 {
            return Err(format!(
                "path `{template}` has more than one variable in the segment `{segment}`, \
                 which Portico cannot route"
            ));
        }
        if vars == 0 {
            out.push_str(segment);
            continue;
        }
        let (before, rest) = segment.split_once('{').unwrap_or((segment, ""));
        let Some((name, after)) = rest.split_once('}') else {
            return Err(format!("path `{template}` has a `{{` without `}}`"));
        };
        if name.is_empty() || after.contains('}') {
            return Err(format!("path `{template}` has an invalid variable"));
        }
        out.push_str(before);
        out.push_str(&format!("{{p{n}}}"));
        out.push_str(after);
        n += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ops: &[(&str, Method)]) -> OperationTable {
        let mut b = OperationTableBuilder::new();
        for (path, method) in ops {
            b.insert(path, method.clone(), None).unwrap();
        }
        b.build()
    }

    fn found(t: &OperationTable, m: Method, path: &str) -> Option<String> {
        match t.lookup(&m, path) {
            OperationMatch::Found(op) => Some(op.label.to_string()),
            _ => None,
        }
    }

    #[test]
    fn templates_match_whole_segments() {
        let t = table(&[
            ("/pets", Method::GET),
            ("/pets", Method::POST),
            ("/pets/{petId}", Method::GET),
            ("/pets/mine", Method::GET),
            ("/pets/{id}/toys/{toy}", Method::DELETE),
            ("/img/{name}.png", Method::GET),
            ("/", Method::GET),
        ]);
        assert_eq!(
            found(&t, Method::GET, "/pets").as_deref(),
            Some("GET /pets")
        );
        assert_eq!(
            found(&t, Method::POST, "/pets").as_deref(),
            Some("POST /pets")
        );
        assert_eq!(
            found(&t, Method::GET, "/pets/7").as_deref(),
            Some("GET /pets/{petId}")
        );
        assert_eq!(
            found(&t, Method::GET, "/pets/mine").as_deref(),
            Some("GET /pets/mine"),
            "static segments win"
        );
        assert_eq!(
            found(&t, Method::DELETE, "/pets/7/toys/ball").as_deref(),
            Some("DELETE /pets/{id}/toys/{toy}")
        );
        assert_eq!(
            found(&t, Method::GET, "/img/cat.png").as_deref(),
            Some("GET /img/{name}.png")
        );
        assert_eq!(found(&t, Method::GET, "").as_deref(), Some("GET /"));
        for miss in [
            "/pets/7/8",
            "/pet",
            "/pets/",
            "/img/cat.gif",
            "/pets/7/toys",
        ] {
            assert_eq!(
                t.lookup(&Method::GET, miss),
                OperationMatch::NoPath,
                "{miss}"
            );
        }
    }

    #[test]
    fn wrong_method_gives_allow() {
        let t = table(&[
            ("/pets", Method::POST),
            ("/pets", Method::GET),
            ("/pets/{id}", Method::DELETE),
        ]);
        match t.lookup(&Method::PUT, "/pets") {
            OperationMatch::NoMethod { allow } => assert_eq!(allow, "GET, HEAD, POST"),
            other => panic!("{other:?}"),
        }
        match t.lookup(&Method::GET, "/pets/1") {
            OperationMatch::NoMethod { allow } => assert_eq!(allow, "DELETE"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            found(&t, Method::HEAD, "/pets").as_deref(),
            Some("GET /pets")
        );
        assert!(matches!(
            t.lookup(&Method::HEAD, "/pets/1"),
            OperationMatch::NoMethod { .. }
        ));
    }

    #[test]
    fn duplicates_and_unroutable_templates_are_refused() {
        let mut b = OperationTableBuilder::new();
        assert_eq!(b.insert("/a/{x}", Method::GET, Some("one")), Ok(0));
        assert_eq!(
            b.insert("/a/{y}", Method::GET, None),
            Err(OperationError::Duplicate { other: 0 })
        );
        assert_eq!(b.insert("/a/{y}", Method::PUT, None), Ok(1));
        assert!(matches!(
            b.insert("/f/{a}.{b}", Method::GET, None),
            Err(OperationError::Invalid(_))
        ));
        let t = b.build();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(0).unwrap().id.as_deref(), Some("one"));
        assert_eq!(t.get(1).unwrap().path.as_ref(), "/a/{y}");
    }

    #[test]
    fn variables_are_renamed_by_position() {
        assert_eq!(tree_route("/a/{x}/b/{y}").unwrap(), "/a/{p0}/b/{p1}");
        assert_eq!(tree_route("/img-{n}.png").unwrap(), "/img-{p0}.png");
        assert_eq!(tree_route("/").unwrap(), "/");
        let t = table(&[("/a/{id}", Method::GET), ("/a/{name}/b", Method::GET)]);
        assert_eq!(
            found(&t, Method::GET, "/a/1/b").as_deref(),
            Some("GET /a/{name}/b")
        );
    }
}
