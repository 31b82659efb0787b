-- The audit log's own schema (dicomseal_audit). Until now it held a copy of
-- the custody schema, its custody tables empty; the audit log keeps only
-- what it needs: the log's tables (entries, batches, tree nodes,
-- checkpoints, cursors) and `events`, its index: each entry's time
-- (milliseconds since the epoch), actor, object and action, so that a
-- query by actor, by object or by time reads an index instead of every
-- entry. Rows are written in the same transaction as their entries
-- (audit.Index) and, like them, never change. Migrations 1 to 9 are the
-- custody log's, as they were applied.

-- +goose Up
DROP TABLE identity;
DROP TABLE incidents;
DROP TABLE instances;
DROP TABLE tokens;

CREATE TABLE events (
    idx     BIGINT PRIMARY KEY REFERENCES entries (idx),
    time_ms BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    object  TEXT   NOT NULL,
    action  TEXT   NOT NULL
);
CREATE INDEX events_by_time ON events (time_ms, idx);
CREATE INDEX events_by_actor ON events (actor, idx);
CREATE INDEX events_by_object ON events (object, idx);
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

INSERT INTO events (idx, time_ms, actor, object, action)
SELECT idx,
       COALESCE((extract(epoch FROM (convert_from(body, 'UTF8')::jsonb ->> 'time')::timestamptz) * 1000)::bigint, 0),
       subject,
       COALESCE(convert_from(body, 'UTF8')::jsonb ->> 'object', ''),
       COALESCE(convert_from(body, 'UTF8')::jsonb ->> 'action', '')
FROM entries;

-- +goose Down
DROP TABLE events;
