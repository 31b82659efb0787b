-- The audit log's own schema. Until now audit.db held a copy of the custody
-- schema, its custody tables empty; the audit log keeps only what it needs:
-- the log's tables (entries, batches, tree nodes, checkpoints, cursors)
-- and `events`, its index: each entry's time (milliseconds since the
-- epoch), actor, object and action, so that a query by actor, by object or
-- by time reads an index instead of every entry. Rows are written in the
-- same transaction as their entries (audit.Index) and, like them, never
-- change. Migrations 1 to 7 are the custody log's, as they were applied.

-- +goose Up
-- Never on the custody ledger: a file with custody rows is not an audit log
-- (the NOT NULL constraint aborts the migration, and nothing is dropped).
INSERT INTO compatibility (requires) SELECT NULL
WHERE EXISTS (SELECT 1 FROM identity) OR EXISTS (SELECT 1 FROM instances) OR EXISTS (SELECT 1 FROM tokens)
   OR EXISTS (SELECT 1 FROM entries WHERE kind <> 'audit');
-- A binary that does not write the index must not write this log.
UPDATE compatibility SET requires = 8;
DROP TABLE identity;
DROP TABLE incidents;
DROP TRIGGER instances_no_update;
DROP TRIGGER instances_no_delete;
DROP TABLE instances;
DROP TABLE tokens;

CREATE TABLE events (
    idx     INTEGER PRIMARY KEY REFERENCES entries (idx),
    time_ms INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    object  TEXT    NOT NULL,
    action  TEXT    NOT NULL
) STRICT;
CREATE INDEX events_by_time ON events (time_ms);
CREATE INDEX events_by_actor ON events (actor);
CREATE INDEX events_by_object ON events (object);

-- +goose StatementBegin
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
-- +goose StatementEnd

INSERT INTO events (idx, time_ms, actor, object, action)
SELECT idx,
       CASE WHEN json_valid(body)
            THEN COALESCE(CAST(ROUND((julianday(json_extract(body, '$.time')) - 2440587.5) * 86400000) AS INTEGER), 0)
            ELSE 0 END,
       subject,
       CASE WHEN json_valid(body) THEN substr(COALESCE(json_extract(body, '$.object'), ''), 1, 256) ELSE '' END,
       CASE WHEN json_valid(body) THEN substr(COALESCE(json_extract(body, '$.action'), ''), 1, 256) ELSE '' END
FROM entries;

-- +goose Down
DROP TABLE events;
UPDATE compatibility SET requires = 6;
