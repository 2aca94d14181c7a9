//! Queries for one developer's share of the entities: what a consumer of
//! the admin API or the portal sees of the apps.

use crate::entities::{Entity, Kind, Listing, Page, list_in};
use crate::{Error, Store};

impl Store {
    /// The apps of `developer` (an e-mail, compared lower-cased) in name
    /// order, a page at a time, read like any other listing: one query for
    /// the page and one for its subscriptions.
    pub async fn list_apps_of(
        &self,
        developer: &str,
        page: &Page,
    ) -> Result<Listing<Entity>, Error> {
        let mut conn = self.pool.acquire().await?;
        list_in(&mut conn, Kind::App, page, Some(developer)).await
    }
}
