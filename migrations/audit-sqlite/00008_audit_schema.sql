-- The audit log's own schema. Until now audit.db held a copy of the custody
-- schema, its custody tables empty; the audit log keeps only what it needs:
-- the log's tables (entries, batches, tree nodes, checkpoints, cursors)
-- and `events`, its index: each entry's time (milliseconds since the
-- epoch), actor, object and action, so that a query by actor, by object or
-- by time reads an index instead of every entry. Rows are written in the
-- same transaction as their entries (audit.Index) and, like them, never
-- change. Migrations 1 to 7 are the custody log's, as they were applied.

-- +goose Up
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
       COALESCE(CAST(ROUND((julianday(json_extract(body, '$.time')) - 2440587.5) * 86400000) AS INTEGER), 0),
       subject,
       COALESCE(json_extract(body, '$.object'), ''),
       COALESCE(json_extract(body, '$.action'), '')
FROM entries;

-- +goose Down
DROP TABLE events;
