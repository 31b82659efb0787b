-- Followers' cursors (ledger.Follower): for each named consumer of the log
-- (a scrubber, a SIEM export, a report builder), the index of the next
-- entry it will handle, so that a restart resumes exactly where it stopped.
-- A cursor is correctable state, not history: it is updated in place and
-- proves nothing (the log and its checkpoints do), so it has no
-- append-only trigger and the service role may UPDATE it (migrate.go).
-- Older binaries never read this table, so `compatibility` is left alone.
-- updated_at is for operators (when did this consumer last move?).

-- +goose Up
CREATE TABLE cursors (
    name       TEXT        PRIMARY KEY,
    position   BIGINT      NOT NULL CHECK (position >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE cursors;
