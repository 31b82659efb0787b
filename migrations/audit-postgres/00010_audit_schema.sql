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
-- Never on the custody schema: one with custody rows is not an audit log.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM identity) OR EXISTS (SELECT 1 FROM instances) OR EXISTS (SELECT 1 FROM tokens)
       OR EXISTS (SELECT 1 FROM entries WHERE kind <> 'audit') THEN
        RAISE EXCEPTION 'schema % holds custody rows: the audit schema migrations do not apply to it', current_schema();
    END IF;
END
$$;
-- +goose StatementEnd
-- A binary that does not write the index must not write this log.
UPDATE compatibility SET requires = 10;
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

-- NUL (\u0000) is valid JSON but not PostgreSQL text: strip it first.
INSERT INTO events (idx, time_ms, actor, object, action)
SELECT idx,
       COALESCE((extract(epoch FROM (j ->> 'time')::timestamptz) * 1000)::bigint, 0),
       subject,
       left(COALESCE(j ->> 'object', ''), 256),
       left(COALESCE(j ->> 'action', ''), 256)
FROM (SELECT idx, subject, replace(convert_from(body, 'UTF8'), '\u0000', '')::jsonb AS j FROM entries) AS e;

-- +goose Down
DROP TABLE events;
UPDATE compatibility SET requires = 8;
