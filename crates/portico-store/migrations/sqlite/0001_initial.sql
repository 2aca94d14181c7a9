-- Portico store, SQLite dialect. Portable types only: INTEGER (64-bit),
-- TEXT; timestamps are milliseconds since the Unix epoch; documents are
-- JSON text in the shape of the configuration file.

CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE apis (
    name        TEXT PRIMARY KEY,
    document    TEXT NOT NULL,
    -- The current spec: a version in api_specs, or none.
    spec_version INTEGER,
    revision    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE api_specs (
    api_name    TEXT NOT NULL REFERENCES apis (name) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (api_name, version)
);

CREATE TABLE products (
    name        TEXT PRIMARY KEY,
    document    TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE developers (
    email       TEXT PRIMARY KEY,
    document    TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE apps (
    name        TEXT PRIMARY KEY,
    developer   TEXT NOT NULL REFERENCES developers (email),
    document    TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX apps_developer ON apps (developer);

CREATE TABLE subscriptions (
    app_name     TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    product_name TEXT NOT NULL REFERENCES products (name),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    revision     INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (app_name, product_name)
);
CREATE INDEX subscriptions_product ON subscriptions (product_name);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    app_name    TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    prefix      TEXT,
    digest      TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    replaced_by TEXT,
    revision    INTEGER NOT NULL
);
CREATE INDEX api_keys_app ON api_keys (app_name);

CREATE TABLE users (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'publisher', 'consumer')),
    developer   TEXT REFERENCES developers (email) ON DELETE SET NULL,
    revision    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE admin_tokens (
    id           TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    digest       TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX admin_tokens_user ON admin_tokens (user_name);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    before_doc  TEXT,
    after_doc   TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
    detail      TEXT
);
