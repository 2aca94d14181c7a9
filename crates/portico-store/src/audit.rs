//! The audit log: who did what to which entity, when, with the document
//! before and after, and whether it was done or refused.
//!
//! A change writes its record with [`write`] inside its own transaction, so
//! both commit or neither does. A refused attempt (a role that may not make
//! the change) is recorded by the caller with [`Store::record_refused`];
//! it changes nothing else.

use serde_json::Value;
use sqlx::{Any, Row as _, Transaction};

use crate::entities::{Listing, Page};
use crate::{Error, Millis, Store, now_millis};

/// Who makes a change: a user name, `token:<id>`, or `system` for the node
/// itself. Free text; the admin API decides the form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The node itself (seeding from the configuration file, first start).
    pub fn system() -> Self {
        Self("system".into())
    }
}

/// What became of an attempted change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done and committed.
    Ok,
    /// Refused before anything changed (not allowed).
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
        }
    }
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// Increasing with time; the pagination cursor.
    pub id: i64,
    pub at: Millis,
    pub actor: String,
    /// `put`, `delete`, `issue-key`, `revoke-token`, …
    pub action: String,
    /// `api`, `product`, `developer`, `app`, `subscription`, `api-key`,
    /// `user`, `admin-token`.
    pub kind: String,
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

/// Writes an audit record inside `tx`.
#[allow(clippy::too_many_arguments)] // One column each; a struct would only rename them.
pub(crate) async fn write(
    tx: &mut Transaction<'static, Any>,
    actor: &Actor,
    action: &str,
    kind: &str,
    name: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    detail: Option<&str>,
) -> Result<(), Error> {
    insert(
        &mut **tx,
        actor,
        action,
        kind,
        name,
        before,
        after,
        Outcome::Ok,
        detail,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn insert<'e, E: sqlx::Executor<'e, Database = Any>>(
    executor: E,
    actor: &Actor,
    action: &str,
    kind: &str,
    name: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    outcome: Outcome,
    detail: Option<&str>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, kind, name, before_doc, after_doc, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(now_millis())
    .bind(actor.0.as_str())
    .bind(action)
    .bind(kind)
    .bind(name)
    .bind(before.map(Value::to_string))
    .bind(after.map(Value::to_string))
    .bind(outcome.as_str())
    .bind(detail)
    .execute(executor)
    .await?;
    Ok(())
}

impl Store {
    /// Records an attempt that was refused (for example a role without the
    /// right), with what was asked for in `attempted`. Nothing else changes.
    pub async fn record_refused(
        &self,
        actor: &Actor,
        action: &str,
        kind: &str,
        name: &str,
        attempted: Option<&Value>,
        detail: &str,
    ) -> Result<(), Error> {
        insert(
            &self.pool,
            actor,
            action,
            kind,
            name,
            None,
            attempted,
            Outcome::Refused,
            Some(detail),
        )
        .await
    }

    /// The audit log, oldest first. The cursor is the last record's id.
    pub async fn audit_log(&self, page: &Page) -> Result<Listing<AuditRecord>, Error> {
        let after: i64 = match &page.after {
            None => 0,
            Some(c) => c.parse().map_err(|_| Error::Invalid {
                kind: "cursor",
                detail: format!("`{c}` is not an audit log cursor"),
            })?,
        };
        let limit = page.limit();
        let rows = sqlx::query(
            "SELECT id, at, actor, action, kind, name, before_doc, after_doc, outcome, detail \
             FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let json = |col: &str| -> Result<Option<Value>, Error> {
                let text: Option<String> = row.try_get(col)?;
                text.map(|t| {
                    serde_json::from_str(&t).map_err(|e| Error::Corrupt {
                        kind: "audit record",
                        name: col.to_owned(),
                        detail: e.to_string(),
                    })
                })
                .transpose()
            };
            let outcome: String = row.try_get("outcome")?;
            items.push(AuditRecord {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                kind: row.try_get("kind")?,
                name: row.try_get("name")?,
                before: json("before_doc")?,
                after: json("after_doc")?,
                outcome: if outcome == "ok" {
                    Outcome::Ok
                } else {
                    Outcome::Refused
                },
                detail: row.try_get("detail")?,
            });
        }
        Ok(Listing::cut(items, limit, |r| r.id.to_string()))
    }
}
