//! Subscriptions of apps to products, with a status. An approved
//! subscription lets the app call the product's APIs; an app document's
//! `products` list is its approved subscriptions.
//!
//! Every change to a subscription also bumps the app's revision (its
//! document's `products` may have changed) and the configuration version.

use serde_json::json;
use sqlx::{AnyConnection, Row as _};

use crate::audit::{self, Actor};
use crate::entities::{Expect, Kind, Listing, Page, get_in};
use crate::{Error, Millis, Store, now_millis, version};

/// Where a subscription stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "pending" => Ok(Status::Pending),
            "approved" => Ok(Status::Approved),
            "rejected" => Ok(Status::Rejected),
            other => Err(Error::Corrupt {
                kind: "subscription",
                name: other.to_owned(),
                detail: "unknown status".into(),
            }),
        }
    }
}

/// An app's subscription to a product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub app: String,
    pub product: String,
    pub status: Status,
    pub revision: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Subscription {
    fn audit_name(&self) -> String {
        format!("{}/{}", self.app, self.product)
    }

    fn audit_doc(&self) -> serde_json::Value {
        json!({ "app": self.app, "product": self.product, "status": self.status.as_str() })
    }
}

const COLUMNS: &str = "app_name, product_name, status, revision, created_at, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Subscription, Error> {
    let status: String = row.try_get("status")?;
    Ok(Subscription {
        app: row.try_get("app_name")?,
        product: row.try_get("product_name")?,
        status: Status::parse(&status)?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn get_sub(
    conn: &mut AnyConnection,
    app: &str,
    product: &str,
) -> Result<Option<Subscription>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE app_name = $1 AND product_name = $2"
    ))
    .bind(app)
    .bind(product)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The products an app's approved subscriptions name, in name order.
pub(crate) async fn approved_products(
    conn: &mut AnyConnection,
    app: &str,
) -> Result<Vec<String>, Error> {
    let rows = sqlx::query(
        "SELECT product_name FROM subscriptions WHERE app_name = $1 AND status = 'approved' \
         ORDER BY product_name",
    )
    .bind(app)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Makes the app's approved subscriptions exactly `products` (the app
/// document's list, which the operator wrote): listed products become
/// approved, approved ones not listed are removed, pending and rejected
/// requests for unlisted products stay.
pub(crate) async fn set_approved(
    conn: &mut AnyConnection,
    app: &str,
    products: &[String],
    now: Millis,
) -> Result<(), Error> {
    for product in approved_products(conn, app).await? {
        if !products.contains(&product) {
            sqlx::query("DELETE FROM subscriptions WHERE app_name = $1 AND product_name = $2")
                .bind(app)
                .bind(&product)
                .execute(&mut *conn)
                .await?;
        }
    }
    for product in products {
        let result = sqlx::query(
            "INSERT INTO subscriptions (app_name, product_name, status, revision, created_at, updated_at) \
             VALUES ($1, $2, 'approved', 1, $3, $3) \
             ON CONFLICT (app_name, product_name) DO UPDATE \
             SET status = 'approved', revision = subscriptions.revision + 1, updated_at = $3 \
             WHERE subscriptions.status <> 'approved'",
        )
        .bind(app)
        .bind(product)
        .bind(now)
        .execute(&mut *conn)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if Error::is_foreign_key(&e) => {
                return Err(Error::invalid(
                    Kind::App,
                    format!("unknown product `{product}`"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Bumps an app's revision: its document's `products` may have changed.
async fn touch_app(conn: &mut AnyConnection, app: &str, now: Millis) -> Result<(), Error> {
    sqlx::query("UPDATE apps SET revision = revision + 1, updated_at = $1 WHERE name = $2")
        .bind(now)
        .bind(app)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// An app asks for a product: approved at once when the product's
    /// `approval` is `auto` (the default), pending when it is `manual`.
    pub async fn request_subscription(
        &self,
        actor: &Actor,
        app: &str,
        product: &str,
    ) -> Result<Subscription, Error> {
        let mut tx = self.begin().await?;
        if get_in(&mut tx, Kind::App, app).await?.is_none() {
            return Err(Error::not_found("app", app));
        }
        let Some(p) = get_in(&mut tx, Kind::Product, product).await? else {
            return Err(Error::not_found("product", product));
        };
        if get_sub(&mut tx, app, product).await?.is_some() {
            return Err(Error::AlreadyExists {
                kind: "subscription",
                name: format!("{app}/{product}"),
            });
        }
        let status = if p.document.get("approval").and_then(|a| a.as_str()) == Some("manual") {
            Status::Pending
        } else {
            Status::Approved
        };
        let now = now_millis();
        sqlx::query(
            "INSERT INTO subscriptions (app_name, product_name, status, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, 1, $4, $4)",
        )
        .bind(app)
        .bind(product)
        .bind(status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let sub = get_sub(&mut tx, app, product)
            .await?
            .ok_or_else(|| Error::not_found("subscription", product))?;
        touch_app(&mut tx, app, now).await?;
        audit::write(
            &mut tx,
            actor,
            "subscribe",
            "subscription",
            &sub.audit_name(),
            None,
            Some(&sub.audit_doc()),
            None,
        )
        .await?;
        version::bump(&mut tx, self.backend).await?;
        tx.commit().await?;
        Ok(sub)
    }

    /// Approves or rejects a subscription (or puts it back to pending).
    pub async fn set_subscription_status(
        &self,
        actor: &Actor,
        app: &str,
        product: &str,
        status: Status,
        expect: Expect,
    ) -> Result<Subscription, Error> {
        let mut tx = self.begin().await?;
        let name = format!("{app}/{product}");
        let Some(before) = get_sub(&mut tx, app, product).await? else {
            return Err(Error::not_found("subscription", &name));
        };
        expect.check("subscription", &name, Some(before.revision))?;
        let now = now_millis();
        sqlx::query(
            "UPDATE subscriptions SET status = $1, revision = revision + 1, updated_at = $2 \
             WHERE app_name = $3 AND product_name = $4",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(app)
        .bind(product)
        .execute(&mut *tx)
        .await?;
        let after = get_sub(&mut tx, app, product)
            .await?
            .ok_or_else(|| Error::not_found("subscription", &name))?;
        touch_app(&mut tx, app, now).await?;
        audit::write(
            &mut tx,
            actor,
            "set-status",
            "subscription",
            &name,
            Some(&before.audit_doc()),
            Some(&after.audit_doc()),
            None,
        )
        .await?;
        version::bump(&mut tx, self.backend).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Ends a subscription, whatever its status.
    pub async fn delete_subscription(
        &self,
        actor: &Actor,
        app: &str,
        product: &str,
        expect: Expect,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        let name = format!("{app}/{product}");
        let Some(before) = get_sub(&mut tx, app, product).await? else {
            return Err(Error::not_found("subscription", &name));
        };
        expect.check("subscription", &name, Some(before.revision))?;
        sqlx::query("DELETE FROM subscriptions WHERE app_name = $1 AND product_name = $2")
            .bind(app)
            .bind(product)
            .execute(&mut *tx)
            .await?;
        touch_app(&mut tx, app, now_millis()).await?;
        audit::write(
            &mut tx,
            actor,
            "unsubscribe",
            "subscription",
            &name,
            Some(&before.audit_doc()),
            None,
            None,
        )
        .await?;
        version::bump(&mut tx, self.backend).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_subscription(
        &self,
        app: &str,
        product: &str,
    ) -> Result<Option<Subscription>, Error> {
        let mut conn = self.pool.acquire().await?;
        get_sub(&mut conn, app, product).await
    }

    /// Subscriptions in (app, product) order, optionally of one app and of
    /// one status (an admin's queue of pending requests). The cursor is
    /// `app/product`.
    pub async fn list_subscriptions(
        &self,
        app: Option<&str>,
        status: Option<Status>,
        page: &Page,
    ) -> Result<Listing<Subscription>, Error> {
        let limit = page.limit();
        let (after_app, after_product) = match &page.after {
            None => (String::new(), String::new()),
            Some(c) => match c.split_once('/') {
                Some((a, p)) => (a.to_owned(), p.to_owned()),
                None => {
                    return Err(Error::Invalid {
                        kind: "cursor",
                        detail: format!("`{c}` is not a subscription cursor"),
                    });
                }
            },
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM subscriptions \
             WHERE (app_name > $1 OR (app_name = $1 AND product_name > $2)) \
             AND ($3 = '' OR app_name = $3) AND ($4 = '' OR status = $4) \
             ORDER BY app_name, product_name LIMIT $5"
        ))
        .bind(after_app)
        .bind(after_product)
        .bind(app.unwrap_or_default())
        .bind(status.map_or("", Status::as_str))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Listing::cut(items, limit, Subscription::audit_name))
    }
}
