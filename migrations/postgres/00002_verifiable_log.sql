-- The verifiable log: signed batches, stored tree nodes (perfect subtree
-- roots; id = level << 48 | index) and signed checkpoints. All append-only;
-- the database itself refuses a checkpoint that does not extend the latest,
-- so two integrators can never fork the log.

-- +goose Up
CREATE INDEX entries_by_leaf ON entries (leaf_hash);

CREATE TABLE batches (
    first_idx BIGINT PRIMARY KEY,
    leaves    BYTEA  NOT NULL,
    signature BYTEA  NOT NULL
);

CREATE TABLE tree_nodes (
    id   BIGINT PRIMARY KEY,
    hash BYTEA  NOT NULL
);

CREATE TABLE checkpoints (
    size       BIGINT      PRIMARY KEY,
    root       BYTEA       NOT NULL,
    note       BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION checkpoint_extends() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.size <= COALESCE((SELECT max(size) FROM dicomseal.checkpoints), 0) THEN
        RAISE EXCEPTION 'checkpoint of size % does not extend the latest one', NEW.size
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER checkpoints_extend BEFORE INSERT ON checkpoints FOR EACH ROW EXECUTE FUNCTION checkpoint_extends();
CREATE TRIGGER batches_append_only BEFORE UPDATE OR DELETE ON batches FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER batches_no_truncate BEFORE TRUNCATE ON batches FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER tree_nodes_append_only BEFORE UPDATE OR DELETE ON tree_nodes FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER tree_nodes_no_truncate BEFORE TRUNCATE ON tree_nodes FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
DROP TABLE checkpoints;
DROP TABLE tree_nodes;
DROP TABLE batches;
DROP FUNCTION checkpoint_extends();
DROP INDEX entries_by_leaf;
