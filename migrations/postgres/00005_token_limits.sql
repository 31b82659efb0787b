-- A per-token request size limit, below the server's --max-body; NULL
-- leaves the server's.

-- +goose Up
ALTER TABLE tokens ADD COLUMN max_body BIGINT CHECK (max_body > 0);

-- +goose Down
ALTER TABLE tokens DROP COLUMN max_body;
