//! Security requirements taken from an API's spec, compiled once per
//! snapshot: one authentication policy per security scheme the spec uses,
//! and for each operation the alternatives (OR) of schemes (AND) that admit
//! a request. The gateway applies them after operation routing, when the
//! API lists no authentication policy of its own.

use std::sync::Arc;

use http::HeaderName;

use crate::ApiOperation;
use crate::policy::Policy;

/// The spec's security of one API.
#[derive(Clone, Debug)]
pub struct SpecSecurity {
    /// One authentication policy per security scheme that a requirement
    /// names, in order of first use.
    pub schemes: Vec<SchemePolicy>,
    /// The requirements of each operation, by operation index.
    pub operations: Vec<Arc<Requirements>>,
    /// The document-wide requirements: for requests that matched no
    /// operation (`routing: passthrough`, an undeclared `OPTIONS`).
    pub fallback: Arc<Requirements>,
    /// Headers the schemes' policies set for the upstream.
    pub owned: Vec<HeaderName>,
}

impl SpecSecurity {
    /// The requirements of a request that matched `operation`.
    pub fn requirements(&self, operation: Option<&ApiOperation>) -> &Requirements {
        operation
            .and_then(|op| self.operations.get(op.index as usize))
            .unwrap_or(&self.fallback)
    }
}

impl PartialEq for SpecSecurity {
    /// Policies compare by identity, as in [`crate::policy::PolicyChain`].
    fn eq(&self, other: &Self) -> bool {
        self.schemes.len() == other.schemes.len()
            && self
                .schemes
                .iter()
                .zip(&other.schemes)
                .all(|(a, b)| a.name == b.name && Arc::ptr_eq(&a.policy, &b.policy))
            && self.operations == other.operations
            && self.fallback == other.fallback
    }
}

impl Eq for SpecSecurity {}

/// The policy that checks one security scheme of the spec.
#[derive(Clone, Debug)]
pub struct SchemePolicy {
    /// The scheme's name in `components.securitySchemes`.
    pub name: Arc<str>,
    pub policy: Arc<dyn Policy>,
    /// Whether the credentials of this scheme carry scopes (OAuth 2.0,
    /// OpenID Connect and bearer tokens), so that the scopes a requirement
    /// lists are checked. API keys, Basic credentials and client
    /// certificates carry none, and their requirements' scope lists (the
    /// roles OpenAPI 3.1 allows there) are not checked.
    pub scoped: bool,
}

/// The requirements of one operation: any alternative admits a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Empty: the operation is open (`security: []`).
    pub alternatives: Vec<Alternative>,
    /// Indexes into [`SpecSecurity::schemes`] that any alternative names,
    /// sorted and without duplicates: the credentials looked for.
    pub needed: Vec<u16>,
    /// Whether an alternative is the empty requirement (`{}`), which admits
    /// a request without credentials.
    pub anonymous: bool,
}

impl Requirements {
    /// Builds the requirements from their alternatives.
    pub fn new(alternatives: Vec<Alternative>) -> Self {
        let mut needed: Vec<u16> = alternatives
            .iter()
            .flat_map(|a| a.schemes.iter().map(|(s, _)| *s))
            .collect();
        needed.sort_unstable();
        needed.dedup();
        let anonymous = alternatives.iter().any(|a| a.schemes.is_empty());
        Self {
            alternatives,
            needed,
            anonymous,
        }
    }

    /// No requirement at all: nothing is looked for.
    pub fn is_open(&self) -> bool {
        self.alternatives.is_empty()
    }
}

/// One requirement object: every scheme must pass, with its scopes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alternative {
    /// Scheme index into [`SpecSecurity::schemes`] and the scopes required
    /// (checked only for a scheme that is `scoped`).
    pub schemes: Vec<(u16, Vec<String>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_schemes_are_sorted_once() {
        let r = Requirements::new(vec![
            Alternative {
                schemes: vec![(2, vec![]), (0, vec!["a".into()])],
            },
            Alternative { schemes: vec![] },
            Alternative {
                schemes: vec![(0, vec![])],
            },
        ]);
        assert_eq!(r.needed, vec![0, 2]);
        assert!(r.anonymous);
        assert!(!r.is_open());
        assert!(Requirements::new(Vec::new()).is_open());
    }
}
