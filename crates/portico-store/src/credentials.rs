//! API keys and admin tokens. The plain text is made here, returned once in
//! a [`Secret`], and never written: a row holds the SHA-256 digest (lower
//! hex), a non-secret id (the digest's first 12 hex digits, the id the
//! gateway logs) and, for keys made here, a short visible prefix.
//!
//! - API key: `pk_<8 letters and digits>_<43 base64url characters>`; the
//!   prefix `pk_<8>` identifies it in listings.
//! - Admin token: `pat_<43 base64url characters>`.

use std::time::Duration;

use serde_json::json;
use sqlx::{AnyConnection, Row as _};

use crate::audit::{self, Actor};
use crate::entities::{Kind, get_in};
use crate::secret::{self, Secret};
use crate::users::Role;
use crate::{Error, Millis, Store, now_millis, version};

/// An API key as stored (no secret in it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// The first 12 hex digits of the key's SHA-256.
    pub id: String,
    pub app: String,
    /// `pk_xxxxxxxx` for keys made by the store; `None` for imported keys.
    pub prefix: Option<String>,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    /// The key that replaced this one in a rotation.
    pub replaced_by: Option<String>,
    pub revision: i64,
}

impl ApiKey {
    /// Whether the key opens the door at `now`.
    pub fn is_active(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    fn audit_doc(&self) -> serde_json::Value {
        json!({
            "id": self.id, "app": self.app, "prefix": self.prefix,
            "expires_at": self.expires_at, "revoked_at": self.revoked_at,
            "replaced_by": self.replaced_by,
        })
    }
}

/// A key just made: its record, and the plain text to show once.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub plaintext: Secret,
}

/// An admin token as stored (no secret in it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminToken {
    pub id: String,
    pub user: String,
    pub description: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
}

impl AdminToken {
    fn audit_doc(&self) -> serde_json::Value {
        json!({
            "id": self.id, "user": self.user, "description": self.description,
            "expires_at": self.expires_at, "revoked_at": self.revoked_at,
        })
    }
}

/// A token just made: its record, and the plain text to show once.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: AdminToken,
    pub plaintext: Secret,
}

/// Who a verified admin token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub user: String,
    pub role: Role,
    /// For consumers: the developer whose apps and keys they manage.
    pub developer: Option<String>,
}

/// `last_used_at` is written at most this often per token, so verifying a
/// token is not a write on every admin request.
const LAST_USED_GRANULARITY: Millis = 60_000;

const KEY_COLUMNS: &str =
    "id, app_name, prefix, created_at, expires_at, revoked_at, replaced_by, revision";
const TOKEN_COLUMNS: &str =
    "id, user_name, description, created_at, expires_at, revoked_at, last_used_at";

fn key_from_row(row: &sqlx::any::AnyRow) -> Result<ApiKey, Error> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        app: row.try_get("app_name")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        replaced_by: row.try_get("replaced_by")?,
        revision: row.try_get("revision")?,
    })
}

fn token_from_row(row: &sqlx::any::AnyRow) -> Result<AdminToken, Error> {
    Ok(AdminToken {
        id: row.try_get("id")?,
        user: row.try_get("user_name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

async fn get_key(conn: &mut AnyConnection, app: &str, id: &str) -> Result<Option<ApiKey>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND app_name = $2"
    ))
    .bind(id)
    .bind(app)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(key_from_row).transpose()
}

/// Stores a plain key given in an app document (the configuration file's
/// `api_keys`): only its digest is kept.
pub(crate) async fn import_plain_key(
    conn: &mut AnyConnection,
    app: &str,
    key: &str,
    now: Millis,
) -> Result<(), Error> {
    if key.len() < 8 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            Kind::App,
            "an API key must be at least 8 visible ASCII characters",
        ));
    }
    import_digest(conn, app, &secret::sha256_hex(key), now).await
}

/// Stores a key digest given in an app document (`api_key_hashes`). A
/// digest the app already has is left as it is.
pub(crate) async fn import_digest(
    conn: &mut AnyConnection,
    app: &str,
    digest: &str,
    now: Millis,
) -> Result<(), Error> {
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(
            Kind::App,
            "an API key hash is a SHA-256 digest: 64 hexadecimal digits",
        ));
    }
    let owner = sqlx::query("SELECT app_name FROM api_keys WHERE digest = $1")
        .bind(digest)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = owner {
        let owner: String = row.try_get(0)?;
        return if owner == app {
            Ok(())
        } else {
            Err(Error::invalid(
                Kind::App,
                "an API key is already used by another app",
            ))
        };
    }
    sqlx::query(
        "INSERT INTO api_keys (id, app_name, prefix, digest, created_at, revision) \
         VALUES ($1, $2, NULL, $3, $4, 1)",
    )
    .bind(secret::id_of(digest))
    .bind(app)
    .bind(digest)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Makes a new key for `app` inside the caller's transaction.
async fn insert_new_key(
    conn: &mut AnyConnection,
    app: &str,
    expires_at: Option<Millis>,
    now: Millis,
) -> Result<IssuedKey, Error> {
    let prefix = format!("pk_{}", secret::random_alnum(8));
    let plaintext = format!("{prefix}_{}", secret::random_token());
    let digest = secret::sha256_hex(&plaintext);
    let id = secret::id_of(&digest);
    sqlx::query(
        "INSERT INTO api_keys (id, app_name, prefix, digest, created_at, expires_at, revision) \
         VALUES ($1, $2, $3, $4, $5, $6, 1)",
    )
    .bind(&id)
    .bind(app)
    .bind(&prefix)
    .bind(&digest)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    let key = get_key(conn, app, &id)
        .await?
        .ok_or_else(|| Error::not_found("api key", &id))?;
    Ok(IssuedKey {
        key,
        plaintext: Secret::new(plaintext),
    })
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Makes a new API key for `app`, valid until `expires_at` (or for
    /// ever). The plain text is in the result and nowhere else.
    pub async fn issue_key(
        &self,
        actor: &Actor,
        app: &str,
        expires_at: Option<Millis>,
    ) -> Result<IssuedKey, Error> {
        let mut tx = self.begin().await?;
        if get_in(&mut tx, Kind::App, app).await?.is_none() {
            return Err(Error::not_found("app", app));
        }
        let issued = insert_new_key(&mut tx, app, expires_at, now_millis()).await?;
        audit::write(
            &mut tx,
            actor,
            "issue-key",
            "api-key",
            &issued.key.id,
            None,
            Some(&issued.key.audit_doc()),
            None,
        )
        .await?;
        version::bump(&mut tx, self.backend).await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// Replaces an active key: a new key is made (valid until
    /// `expires_at`), and the old one keeps working for `overlap` more (or
    /// until its own expiry, if sooner), so clients can switch over.
    pub async fn rotate_key(
        &self,
        actor: &Actor,
        app: &str,
        id: &str,
        overlap: Duration,
        expires_at: Option<Millis>,
    ) -> Result<IssuedKey, Error> {
        let mut tx = self.begin().await?;
        let now = now_millis();
        let Some(old) = get_key(&mut tx, app, id).await? else {
            return Err(Error::not_found("api key", id));
        };
        if !old.is_active(now) {
            return Err(Error::Invalid {
                kind: "api key",
                detail: format!("key `{id}` is revoked or expired; issue a new key instead"),
            });
        }
        let issued = insert_new_key(&mut tx, app, expires_at, now).await?;
        let until = now.saturating_add(millis(overlap));
        let old_expiry = old.expires_at.map_or(until, |e| e.min(until));
        sqlx::query(
            "UPDATE api_keys SET expires_at = $1, replaced_by = $2, revision = revision + 1 \
             WHERE id = $3",
        )
        .bind(old_expiry)
        .bind(&issued.key.id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let after = get_key(&mut tx, app, id)
            .await?
            .ok_or_else(|| Error::not_found("api key", id))?;
        audit::write(
            &mut tx,
            actor,
            "rotate-key",
            "api-key",
            id,
            Some(&old.audit_doc()),
            Some(&after.audit_doc()),
            Some(&format!("replaced by {}", issued.key.id)),
        )
        .await?;
        audit::write(
            &mut tx,
            actor,
            "issue-key",
            "api-key",
            &issued.key.id,
            None,
            Some(&issued.key.audit_doc()),
            Some(&format!("rotation of {id}")),
        )
        .await?;
        version::bump(&mut tx, self.backend).await?;
        tx.commit().await?;
        Ok(issued)
    }

    /// Revokes a key at once. Revoking a revoked key changes nothing.
    pub async fn revoke_key(&self, actor: &Actor, app: &str, id: &str) -> Result<ApiKey, Error> {
        let mut tx = self.begin().await?;
        let Some(before) = get_key(&mut tx, app, id).await? else {
            return Err(Error::not_found("api key", id));
        };
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        sqlx::query("UPDATE api_keys SET revoked_at = $1, revision = revision + 1 WHERE id = $2")
            .bind(now_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let after = get_key(&mut tx, app, id)
            .await?
            .ok_or_else(|| Error::not_found("api key", id))?;
        audit::write(
            &mut tx,
            actor,
            "revoke-key",
            "api-key",
            id,
            Some(&before.audit_doc()),
            Some(&after.audit_doc()),
            None,
        )
        .await?;
        version::bump(&mut tx, self.backend).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// An app's keys, oldest first, active or not.
    pub async fn list_keys(&self, app: &str) -> Result<Vec<ApiKey>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE app_name = $1 ORDER BY created_at, id"
        ))
        .bind(app)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// The active key whose plain text is `plaintext`, if any. (The data
    /// plane checks keys against its snapshot; this is for the portal and
    /// tests.)
    pub async fn verify_key(&self, plaintext: &str) -> Result<Option<ApiKey>, Error> {
        let digest = secret::sha256_hex(plaintext);
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS}, digest FROM api_keys WHERE digest = $1"
        ))
        .bind(&digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("digest")?;
        let key = key_from_row(&row)?;
        Ok((secret::digests_equal(&stored, &digest) && key.is_active(now_millis())).then_some(key))
    }

    /// Makes an admin token for `user`. The plain text is in the result and
    /// nowhere else.
    pub async fn issue_admin_token(
        &self,
        actor: &Actor,
        user: &str,
        description: &str,
        expires_at: Option<Millis>,
    ) -> Result<IssuedToken, Error> {
        let plaintext = format!("pat_{}", secret::random_token());
        let token = self
            .insert_token(actor, user, &plaintext, description, expires_at)
            .await?;
        Ok(IssuedToken {
            token,
            plaintext: Secret::new(plaintext),
        })
    }

    /// Stores a token chosen elsewhere (`PORTICO_ADMIN_TOKEN`), at least 16
    /// visible ASCII characters. Importing a token the store already has
    /// returns the stored one, so a node can import it at every start.
    pub async fn import_admin_token(
        &self,
        actor: &Actor,
        user: &str,
        plaintext: &str,
        description: &str,
    ) -> Result<AdminToken, Error> {
        if plaintext.len() < 16 || !plaintext.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Invalid {
                kind: "admin token",
                detail: "a token must be at least 16 visible ASCII characters".into(),
            });
        }
        let digest = secret::sha256_hex(plaintext);
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE digest = $1"
        ))
        .bind(&digest)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return token_from_row(&row);
        }
        self.insert_token(actor, user, plaintext, description, None)
            .await
    }

    async fn insert_token(
        &self,
        actor: &Actor,
        user: &str,
        plaintext: &str,
        description: &str,
        expires_at: Option<Millis>,
    ) -> Result<AdminToken, Error> {
        let digest = secret::sha256_hex(plaintext);
        let id = secret::id_of(&digest);
        let mut tx = self.begin().await?;
        let result = sqlx::query(
            "INSERT INTO admin_tokens (id, user_name, digest, description, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(user)
        .bind(&digest)
        .bind(description)
        .bind(now_millis())
        .bind(expires_at)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if Error::is_foreign_key(&e) => return Err(Error::not_found("user", user)),
            Err(e) => return Err(e.into()),
        }
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE id = $1"
        ))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        let token = token_from_row(&row)?;
        audit::write(
            &mut tx,
            actor,
            "issue-token",
            "admin-token",
            &id,
            None,
            Some(&token.audit_doc()),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The principal behind a presented admin token, if the token exists,
    /// is not revoked and has not expired. Records when it was last used
    /// (at most once a minute).
    pub async fn verify_admin_token(&self, plaintext: &str) -> Result<Option<Principal>, Error> {
        let digest = secret::sha256_hex(plaintext);
        let row = sqlx::query(
            "SELECT t.id, t.digest, t.expires_at, t.revoked_at, t.last_used_at, u.name, u.role, u.developer \
             FROM admin_tokens t JOIN users u ON u.name = t.user_name WHERE t.digest = $1",
        )
        .bind(&digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("digest")?;
        let expires_at: Option<Millis> = row.try_get("expires_at")?;
        let revoked_at: Option<Millis> = row.try_get("revoked_at")?;
        let last_used: Option<Millis> = row.try_get("last_used_at")?;
        let now = now_millis();
        if !secret::digests_equal(&stored, &digest)
            || revoked_at.is_some()
            || expires_at.is_some_and(|e| e <= now)
        {
            return Ok(None);
        }
        let id: String = row.try_get("id")?;
        if last_used.is_none_or(|t| now - t >= LAST_USED_GRANULARITY) {
            sqlx::query("UPDATE admin_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&id)
                .execute(&self.pool)
                .await?;
        }
        let role: String = row.try_get("role")?;
        Ok(Some(Principal {
            token_id: id,
            user: row.try_get("name")?,
            role: Role::parse(&role)?,
            developer: row.try_get("developer")?,
        }))
    }

    /// Revokes an admin token at once. Revoking a revoked token changes
    /// nothing.
    pub async fn revoke_admin_token(&self, actor: &Actor, id: &str) -> Result<AdminToken, Error> {
        let mut tx = self.begin().await?;
        let id = id.to_owned();
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE id = $1"
        ))
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(before) = row.as_ref().map(token_from_row).transpose()? else {
            return Err(Error::not_found("admin token", &id));
        };
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2")
            .bind(now_millis())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE id = $1"
        ))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        let after = token_from_row(&row)?;
        audit::write(
            &mut tx,
            actor,
            "revoke-token",
            "admin-token",
            &id,
            Some(&before.audit_doc()),
            Some(&after.audit_doc()),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Admin tokens, of one user or of everyone, oldest first.
    pub async fn list_admin_tokens(&self, user: Option<&str>) -> Result<Vec<AdminToken>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE ($1 = '' OR user_name = $1) ORDER BY created_at, id"
        ))
        .bind(user.unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }
}
