-- API tokens. Only a SHA-256 of each token's secret is stored; revocation
-- and expiry are checked on every request, so a revoked token stops at
-- once, in every replica. Correctable on purpose (revocation updates it).

-- +goose Up
CREATE TABLE tokens (
    id          TEXT        PRIMARY KEY,
    name        TEXT        NOT NULL,
    role        TEXT        NOT NULL,
    secret_hash BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;

-- +goose Down
DROP TABLE tokens;
