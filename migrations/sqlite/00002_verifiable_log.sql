-- The verifiable log: every group commit is a signed batch of leaf hashes;
-- the integrator turns verified batches into RFC 6962 tree nodes (perfect
-- subtree roots, so any proof is O(log n) lookups) and signed checkpoints.
-- All three tables are append-only, and a checkpoint that does not extend
-- the latest one is refused by the database itself.

-- +goose Up
CREATE INDEX entries_by_leaf ON entries (leaf_hash);

CREATE TABLE batches (
    first_idx INTEGER PRIMARY KEY,
    leaves    BLOB    NOT NULL, -- 32-byte leaf hashes, concatenated
    signature BLOB    NOT NULL
) STRICT;

CREATE TABLE tree_nodes (
    id   INTEGER PRIMARY KEY, -- level << 48 | index
    hash BLOB    NOT NULL
) STRICT;

CREATE TABLE checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB    NOT NULL,
    note       BLOB    NOT NULL,
    created_at TEXT    NOT NULL
) STRICT;

-- +goose StatementBegin
CREATE TRIGGER checkpoints_extend BEFORE INSERT ON checkpoints
WHEN NEW.size <= COALESCE((SELECT MAX(size) FROM checkpoints), 0)
BEGIN SELECT RAISE(ABORT, 'checkpoint does not extend the latest one'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER batches_no_update BEFORE UPDATE ON batches
BEGIN SELECT RAISE(ABORT, 'batches are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER batches_no_delete BEFORE DELETE ON batches
BEGIN SELECT RAISE(ABORT, 'batches are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER tree_nodes_no_update BEFORE UPDATE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'tree nodes are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER tree_nodes_no_delete BEFORE DELETE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'tree nodes are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE checkpoints;
DROP TABLE tree_nodes;
DROP TABLE batches;
DROP INDEX entries_by_leaf;
