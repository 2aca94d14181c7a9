-- Which entities a node's configuration file put into the store, so that a
-- later start or reload of that file can delete the ones it no longer
-- lists without touching entities made through the admin API.
CREATE TABLE seeded_entities (
    source  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (source, kind, name)
);
