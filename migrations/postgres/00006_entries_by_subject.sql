-- Entries of one subject (an instance's UID; an audit entry's actor) in
-- log order straight from the index: a scan that stops after `limit`
-- entries reads that many, instead of fetching and sorting every entry of
-- a busy actor. (SQLite's index already ends in the rowid, idx.)

-- +goose Up
CREATE INDEX entries_by_subject ON entries (sop_instance_uid, idx);
DROP INDEX entries_by_sop;

-- +goose Down
CREATE INDEX entries_by_sop ON entries (sop_instance_uid);
DROP INDEX entries_by_subject;
