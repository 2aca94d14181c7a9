//! Security from the spec: an API with a spec and no authentication policy
//! of its own is protected by the spec's `security` requirements, each
//! security scheme mapped onto an authentication policy once per snapshot:
//!
//! | scheme | policy |
//! |---|---|
//! | `apiKey` in `header`, `query` or `cookie` | `api_key` looking in that one place |
//! | `http` `basic` | `basic_auth` |
//! | `mutualTLS` | `mtls` |
//! | `http` `bearer`, `oauth2`, `openIdConnect` | the policy that `apis[].security_schemes.NAME` gives (a `jwt` with its keys); the spec carries no keys |
//!
//! `apis[].security_schemes.NAME` may also replace the mapping of any other
//! scheme. See `docs/configuration.md`, "Security from the spec".

use std::collections::BTreeMap;
use std::sync::Arc;

use portico_model::policy::{Phase, Policy};
use portico_model::security::{Alternative, Requirements, SchemePolicy, SpecSecurity};
use portico_spec::{ParameterIn, SecurityRequirement, SecurityScheme, Spec, Value};

use crate::Diagnostic;
use crate::de::Located;
use crate::raw::RawPolicy;

/// The schemes' own policies, given in the configuration.
pub(crate) type SchemeOverrides = BTreeMap<String, Located<RawPolicy>>;

/// Compiles the spec's requirements; `Ok(None)` when no operation has any
/// (and no scheme is configured). `place` is the `spec` key.
pub(crate) fn compile(
    spec: &Spec,
    overrides: Option<Located<SchemeOverrides>>,
    place: &Located<()>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Option<SpecSecurity>> {
    let mut ok = true;
    let overrides = overrides.map(|o| o.value).unwrap_or_default();
    for (name, policy) in &overrides {
        if !spec.security_schemes.contains_key(name) {
            errors.push(policy.diag(format!(
                "the spec declares no security scheme `{name}` (components.securitySchemes has {})",
                names(spec.security_schemes.keys())
            )));
            ok = false;
        } else if policy.value.0.phase() != Phase::Authentication {
            errors.push(policy.diag(format!(
                "security scheme `{name}` needs an authentication policy (`api_key`, `basic_auth`, `jwt`, `mtls`), not `{}`",
                policy.value.0.name()
            )));
            ok = false;
        }
    }
    let mut builder = Builder {
        spec,
        overrides: &overrides,
        schemes: Vec::new(),
        by_name: BTreeMap::new(),
        place,
        errors,
        ok,
    };
    let fallback = Arc::new(builder.requirements(&spec.security));
    let mut operations = Vec::with_capacity(spec.operations.len());
    let mut any = !fallback.is_open();
    for op in &spec.operations {
        let reqs = match &op.security {
            None => fallback.clone(),
            Some(own) => {
                let r = Arc::new(builder.requirements(own));
                any |= !r.is_open();
                r
            }
        };
        operations.push(reqs);
    }
    if !builder.ok {
        return None;
    }
    if !any {
        return Some(None);
    }
    let owned = builder
        .schemes
        .iter()
        .flat_map(|s| s.policy.owned_headers().iter().cloned())
        .collect();
    Some(Some(SpecSecurity {
        schemes: builder.schemes,
        operations,
        fallback,
        owned,
    }))
}

struct Builder<'a> {
    spec: &'a Spec,
    overrides: &'a SchemeOverrides,
    schemes: Vec<SchemePolicy>,
    /// Scheme name → index in `schemes`; `None` for a scheme that failed.
    by_name: BTreeMap<String, Option<u16>>,
    place: &'a Located<()>,
    errors: &'a mut Vec<Diagnostic>,
    ok: bool,
}

impl Builder<'_> {
    fn requirements(&mut self, list: &[SecurityRequirement]) -> Requirements {
        let mut alternatives = Vec::with_capacity(list.len());
        for req in list {
            let mut schemes = Vec::with_capacity(req.schemes.len());
            for (name, scopes) in &req.schemes {
                if let Some(i) = self.scheme(name) {
                    schemes.push((i, scopes.clone()));
                }
            }
            alternatives.push(Alternative { schemes });
        }
        Requirements::new(alternatives)
    }

    /// The index of scheme `name`'s policy, built on first use.
    fn scheme(&mut self, name: &str) -> Option<u16> {
        if let Some(known) = self.by_name.get(name) {
            return *known;
        }
        let built = self.build(name);
        let index = match built {
            Some((policy, scoped)) if self.schemes.len() < usize::from(u16::MAX) => {
                self.schemes.push(SchemePolicy {
                    name: name.into(),
                    policy,
                    scoped,
                });
                Some(u16::try_from(self.schemes.len() - 1).unwrap_or(u16::MAX))
            }
            _ => {
                self.ok = false;
                None
            }
        };
        self.by_name.insert(name.to_owned(), index);
        index
    }

    /// The policy for scheme `name` and whether its credentials carry
    /// scopes; reports why not otherwise.
    fn build(&mut self, name: &str) -> Option<(Arc<dyn Policy>, bool)> {
        // The loader checked that every requirement names a declared scheme.
        let scheme = self.spec.security_schemes.get(name)?;
        let scoped = matches!(
            scheme,
            SecurityScheme::OAuth2 { .. } | SecurityScheme::OpenIdConnect { .. }
        ) || matches!(scheme, SecurityScheme::Http { scheme, .. } if scheme == "bearer");
        if let Some(policy) = self.overrides.get(name) {
            return Some((policy.value.0.clone(), scoped));
        }
        let built = match scheme {
            SecurityScheme::ApiKey {
                name: key,
                location,
            } => {
                let place = match location {
                    ParameterIn::Header => portico_policies::KeyIn::Header,
                    ParameterIn::Query => portico_policies::KeyIn::Query,
                    ParameterIn::Cookie => portico_policies::KeyIn::Cookie,
                    ParameterIn::Path => {
                        return self.refuse(name, "an API key in the path cannot be checked");
                    }
                };
                portico_policies::api_key_for_scheme(place, key)
            }
            SecurityScheme::Http { scheme, .. } if scheme == "basic" => {
                portico_policies::build("basic_auth", Value::Null).map_err(|e| e.to_string())
            }
            SecurityScheme::MutualTls => {
                portico_policies::build("mtls", Value::Null).map_err(|e| e.to_string())
            }
            SecurityScheme::Http { scheme, .. } if scheme == "bearer" => {
                return self.needs_keys(name, "http bearer");
            }
            SecurityScheme::OAuth2 { .. } => return self.needs_keys(name, "oauth2"),
            SecurityScheme::OpenIdConnect { .. } => return self.needs_keys(name, "openIdConnect"),
            SecurityScheme::Http { scheme, .. } => {
                return self.refuse(
                    name,
                    &format!("HTTP authentication scheme `{scheme}` is not supported (only `basic`, and `bearer` with a `jwt` policy)"),
                );
            }
        };
        match built {
            Ok(policy) => Some((policy, scoped)),
            Err(e) => self.refuse(name, &e),
        }
    }

    fn needs_keys<T>(&mut self, name: &str, kind: &str) -> Option<T> {
        self.refuse(
            name,
            &format!(
                "{kind} tokens are checked by a `jwt` policy, whose keys a spec does not carry; \
                 configure it as `security_schemes: {{ {name}: {{ jwt: {{ … }} }} }}` on the API, \
                 or list authentication policies under `policies` (they replace the spec's security)"
            ),
        )
    }

    fn refuse<T>(&mut self, name: &str, why: &str) -> Option<T> {
        self.errors.push(
            self.place
                .diag(format!("spec security scheme `{name}`: {why}")),
        );
        None
    }
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<String> = keys.map(|k| format!("`{k}`")).collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}
