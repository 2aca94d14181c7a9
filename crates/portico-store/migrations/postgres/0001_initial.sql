-- Portico store, PostgreSQL dialect. Portable types only: BIGINT (64-bit),
-- TEXT; timestamps are milliseconds since the Unix epoch; documents are
-- JSON text in the shape of the configuration file. Text keys use the "C"
-- collation so that ordering (and so pagination) is byte order, as on SQLite.

CREATE TABLE config_version (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);

CREATE TABLE apis (
    name        TEXT COLLATE "C" PRIMARY KEY,
    document    TEXT NOT NULL,
    -- The current spec: a version in api_specs, or none.
    spec_version BIGINT,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE api_specs (
    api_name    TEXT NOT NULL REFERENCES apis (name) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (api_name, version)
);

CREATE TABLE products (
    name        TEXT COLLATE "C" PRIMARY KEY,
    document    TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE developers (
    email       TEXT COLLATE "C" PRIMARY KEY,
    document    TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE apps (
    name        TEXT COLLATE "C" PRIMARY KEY,
    developer   TEXT NOT NULL REFERENCES developers (email),
    document    TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX apps_developer ON apps (developer);

CREATE TABLE subscriptions (
    app_name     TEXT COLLATE "C" NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    product_name TEXT COLLATE "C" NOT NULL REFERENCES products (name),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    revision     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (app_name, product_name)
);
CREATE INDEX subscriptions_product ON subscriptions (product_name);

CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    app_name    TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    prefix      TEXT,
    digest      TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    replaced_by TEXT,
    revision    BIGINT NOT NULL
);
CREATE INDEX api_keys_app ON api_keys (app_name);

CREATE TABLE users (
    name        TEXT COLLATE "C" PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'publisher', 'consumer')),
    developer   TEXT REFERENCES developers (email) ON DELETE SET NULL,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE admin_tokens (
    id           TEXT COLLATE "C" PRIMARY KEY,
    user_name    TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    digest       TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX admin_tokens_user ON admin_tokens (user_name);

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    before_doc  TEXT,
    after_doc   TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
    detail      TEXT
);
