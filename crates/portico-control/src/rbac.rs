//! Who may do what: the roles table of `docs/admin-api.md`, in one place.
//!
//! | role | may |
//! |---|---|
//! | admin | everything |
//! | publisher | read and write APIs and products; read developers, apps, subscriptions; read upstream health |
//! | consumer | read products (the catalog); read and write its own developer; read, write and delete the apps of its developer, with their keys and subscription requests |
//!
//! A refusal is 403 (`forbidden`) and an audit record with the outcome
//! `refused`, naming who tried what on which resource.

use portico_store::{Kind, Role, Store};
use serde_json::Value;

use crate::auth::Caller;
use crate::problem::ApiError;

/// What a request does to a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
    Delete,
}

/// The verdict of the roles table before looking at the resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    Refused,
    /// Allowed when the resource belongs to the caller's developer.
    IfOwn,
}

/// What `role` may do to entities of `kind`.
pub(crate) fn entity(role: Role, kind: Kind, access: Access) -> Verdict {
    use Verdict::*;
    match (role, kind, access) {
        (Role::Admin, _, _) => Allowed,
        (Role::Publisher, Kind::Api | Kind::Product, _) => Allowed,
        (Role::Publisher, Kind::Developer | Kind::App, Access::Read) => Allowed,
        (Role::Publisher, _, _) => Refused,
        (Role::Consumer, Kind::Product, Access::Read) => Allowed,
        (Role::Consumer, Kind::Developer, Access::Read | Access::Write) => IfOwn,
        (Role::Consumer, Kind::App, _) => IfOwn,
        (Role::Consumer, _, _) => Refused,
    }
}

/// Whether the caller acts for `developer` (an e-mail, compared
/// lower-cased).
pub(crate) fn owns(caller: &Caller, developer: Option<&str>) -> bool {
    match (&caller.0.developer, developer) {
        (Some(mine), Some(theirs)) => mine.eq_ignore_ascii_case(theirs),
        _ => false,
    }
}

/// Records the refused attempt and answers 403. A failure to write the
/// record is logged; the answer stays 403.
pub(crate) async fn refuse(
    store: &Store,
    caller: &Caller,
    action: &str,
    kind: &str,
    name: &str,
    attempted: Option<&Value>,
) -> ApiError {
    let detail = format!(
        "role {} may not {action} {kind} `{name}`",
        caller.role().as_str()
    );
    if let Err(e) = store
        .record_refused(&caller.actor(), action, kind, name, attempted, &detail)
        .await
    {
        tracing::warn!(error = %e, "Cannot record a refused admin request.");
    }
    ApiError::Forbidden(format!(
        "The role {} does not allow {action} on {kind} `{name}`.",
        caller.role().as_str()
    ))
}

/// Admin only.
pub(crate) async fn admin(
    store: &Store,
    caller: &Caller,
    action: &str,
    kind: &str,
    name: &str,
) -> Result<(), ApiError> {
    if caller.role() == Role::Admin {
        Ok(())
    } else {
        Err(refuse(store, caller, action, kind, name, None).await)
    }
}

/// Upstream health: admins and publishers.
pub(crate) async fn health(store: &Store, caller: &Caller, name: &str) -> Result<(), ApiError> {
    match caller.role() {
        Role::Admin | Role::Publisher => Ok(()),
        Role::Consumer => Err(refuse(store, caller, "get", "health", name, None).await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roles_table() {
        use Access::*;
        use Verdict::*;
        for kind in Kind::ALL {
            for access in [Read, Write, Delete] {
                assert_eq!(entity(Role::Admin, kind, access), Allowed);
            }
        }
        assert_eq!(entity(Role::Publisher, Kind::Api, Write), Allowed);
        assert_eq!(entity(Role::Publisher, Kind::Product, Delete), Allowed);
        assert_eq!(entity(Role::Publisher, Kind::App, Read), Allowed);
        assert_eq!(entity(Role::Publisher, Kind::App, Write), Refused);
        assert_eq!(entity(Role::Publisher, Kind::Developer, Delete), Refused);
        assert_eq!(entity(Role::Consumer, Kind::Product, Read), Allowed);
        assert_eq!(entity(Role::Consumer, Kind::Product, Write), Refused);
        assert_eq!(entity(Role::Consumer, Kind::Api, Read), Refused);
        assert_eq!(entity(Role::Consumer, Kind::Developer, Write), IfOwn);
        assert_eq!(entity(Role::Consumer, Kind::Developer, Delete), Refused);
        assert_eq!(entity(Role::Consumer, Kind::App, Delete), IfOwn);
    }
}
