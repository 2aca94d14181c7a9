//! The whole compiled configuration that the data plane serves from.

use std::sync::Arc;

use crate::{Api, Consumers, Developer, Product, RouteTable};

/// An immutable, validated view of every entity. A new configuration means a
/// new `Snapshot`, published with one pointer swap; nothing in it changes
/// after it is built.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// APIs in file order; [`RouteTable`] values index into this.
    pub apis: Vec<Arc<Api>>,
    pub routes: RouteTable,
    pub products: Vec<Product>,
    pub developers: Vec<Developer>,
    pub consumers: Consumers,
}

impl Snapshot {
    /// The API called `name`, if any.
    pub fn api(&self, name: &str) -> Option<&Arc<Api>> {
        self.apis.iter().find(|a| a.name == name)
    }
}
