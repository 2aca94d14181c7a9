//! Queries for one developer's share of the entities: what a consumer of
//! the admin API or the portal sees of the apps.

use sqlx::Row as _;

use crate::entities::{Entity, Kind, Listing, Page, get_in};
use crate::{Error, Store};

impl Store {
    /// The apps of `developer` (an e-mail, compared lower-cased) in name
    /// order, a page at a time.
    pub async fn list_apps_of(
        &self,
        developer: &str,
        page: &Page,
    ) -> Result<Listing<Entity>, Error> {
        let limit = page.limit();
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(
            "SELECT name FROM apps WHERE developer = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(developer.to_ascii_lowercase())
        .bind(page.after.clone().unwrap_or_default())
        .bind(limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get("name")?;
            if let Some(e) = get_in(&mut conn, Kind::App, &name).await? {
                items.push(e);
            }
        }
        Ok(Listing::cut(items, limit, |e| e.name.clone()))
    }
}
