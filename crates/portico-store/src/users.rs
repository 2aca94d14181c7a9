//! Users of the admin API and the portal, with a role. A consumer is
//! linked to the developer whose apps and keys it manages. Users are not
//! part of a snapshot, so changing them does not bump the configuration
//! version.

use serde_json::json;
use sqlx::{AnyConnection, Row as _};

use crate::audit::{self, Actor};
use crate::entities::{Expect, Listing, Page};
use crate::{Error, Millis, Store, now_millis};

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything, users included.
    Admin,
    /// APIs and products.
    Publisher,
    /// Its own developer, apps and keys.
    Consumer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Publisher => "publisher",
            Role::Consumer => "consumer",
        }
    }

    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "admin" => Ok(Role::Admin),
            "publisher" => Ok(Role::Publisher),
            "consumer" => Ok(Role::Consumer),
            other => Err(Error::Invalid {
                kind: "user",
                detail: format!("unknown role `{other}`: expected admin, publisher or consumer"),
            }),
        }
    }
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The developer (e-mail) a consumer acts for.
    pub developer: Option<String>,
    pub revision: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl User {
    fn audit_doc(&self) -> serde_json::Value {
        json!({ "name": self.name, "role": self.role.as_str(), "developer": self.developer })
    }
}

const COLUMNS: &str = "name, role, developer, revision, created_at, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<User, Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        name: row.try_get("name")?,
        role: Role::parse(&role)?,
        developer: row.try_get("developer")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn get_user_in(conn: &mut AnyConnection, name: &str) -> Result<Option<User>, Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE name = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

impl Store {
    /// Creates or replaces a user. A consumer must name its developer.
    pub async fn put_user(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        developer: Option<&str>,
        expect: Expect,
    ) -> Result<User, Error> {
        if name.is_empty() || name.len() > 254 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Invalid {
                kind: "user",
                detail: "a user name is 1 to 254 visible ASCII characters".into(),
            });
        }
        if role == Role::Consumer && developer.is_none() {
            return Err(Error::Invalid {
                kind: "user",
                detail: "a consumer acts for a developer; name it".into(),
            });
        }
        let developer = developer.map(str::to_ascii_lowercase);
        let mut tx = self.begin().await?;
        let before = get_user_in(&mut tx, name).await?;
        expect.check("user", name, before.as_ref().map(|u| u.revision))?;
        let now = now_millis();
        let result = match &before {
            None => {
                sqlx::query(
                    "INSERT INTO users (name, role, developer, revision, created_at, updated_at) \
                     VALUES ($1, $2, $3, 1, $4, $4)",
                )
                .bind(name)
                .bind(role.as_str())
                .bind(developer.clone())
                .bind(now)
                .execute(&mut *tx)
                .await
            }
            Some(b) => {
                sqlx::query(
                    "UPDATE users SET role = $2, developer = $3, revision = revision + 1, updated_at = $4 \
                     WHERE name = $1 AND revision = $5",
                )
                .bind(name)
                .bind(role.as_str())
                .bind(developer.clone())
                .bind(now)
                .bind(b.revision)
                .execute(&mut *tx)
                .await
            }
        };
        match result {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => {
                return Err(Error::RevisionMismatch {
                    kind: "user",
                    name: name.to_owned(),
                    expected: before.map_or(0, |b| b.revision),
                    current: None,
                });
            }
            Err(e) if Error::is_foreign_key(&e) => {
                return Err(Error::Invalid {
                    kind: "user",
                    detail: format!("unknown developer `{}`", developer.unwrap_or_default()),
                });
            }
            Err(e) if Error::is_unique(&e) => {
                return Err(Error::AlreadyExists {
                    kind: "user",
                    name: name.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let after = get_user_in(&mut tx, name)
            .await?
            .ok_or_else(|| Error::not_found("user", name))?;
        audit::write(
            &mut tx,
            actor,
            "put",
            "user",
            name,
            before.as_ref().map(User::audit_doc).as_ref(),
            Some(&after.audit_doc()),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    pub async fn get_user(&self, name: &str) -> Result<Option<User>, Error> {
        let mut conn = self.pool.acquire().await?;
        get_user_in(&mut conn, name).await
    }

    /// Deletes a user and its admin tokens.
    pub async fn delete_user(
        &self,
        actor: &Actor,
        name: &str,
        expect: Expect,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        let Some(before) = get_user_in(&mut tx, name).await? else {
            return Err(Error::not_found("user", name));
        };
        expect.check("user", name, Some(before.revision))?;
        sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        audit::write(
            &mut tx,
            actor,
            "delete",
            "user",
            name,
            Some(&before.audit_doc()),
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Users in name order.
    pub async fn list_users(&self, page: &Page) -> Result<Listing<User>, Error> {
        let limit = page.limit();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM users WHERE name > $1 ORDER BY name LIMIT $2"
        ))
        .bind(page.after.clone().unwrap_or_default())
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::cut(items, limit, |u| u.name.clone()))
    }
}
