-- Versioned entry bodies (docs/entries.md): new entries carry "v": 1 and
-- name what they are about `subject` (an instance's SOP Instance UID; an
-- audit entry's actor), and so does the column. A binary older than this
-- migration would not read them, so `compatibility` says which schema
-- version a binary must know to use this database at all: a binary whose
-- newest migration is below `requires` refuses to start. A later migration
-- that older binaries can still use leaves it alone; one they would
-- misread raises it.

-- +goose Up
ALTER TABLE entries RENAME COLUMN sop_instance_uid TO subject;
CREATE TABLE compatibility (requires INTEGER NOT NULL) STRICT;
INSERT INTO compatibility (requires) VALUES (6);

-- +goose Down
DROP TABLE compatibility;
ALTER TABLE entries RENAME COLUMN subject TO sop_instance_uid;
