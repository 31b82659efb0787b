-- Versioned entry bodies (docs/entries.md): new entries carry "v": 1 and
-- name what they are about `subject` (an instance's SOP Instance UID; an
-- audit entry's actor), and so does the column. A binary older than this
-- migration would not read them, so `compatibility` says which schema
-- version a binary must know to use this database at all: a binary whose
-- newest migration is below `requires` refuses to start. A later migration
-- that older binaries can still use leaves it alone; one they would
-- misread raises it.
--
-- A log publishes a signed checkpoint of size 0 when it is created (as
-- C2SP logs do), so a witness can follow it from day one: a checkpoint
-- must be larger than every stored one, not larger than 0.

-- +goose Up
ALTER TABLE entries RENAME COLUMN sop_instance_uid TO subject;
CREATE TABLE compatibility (requires INTEGER NOT NULL) STRICT;
INSERT INTO compatibility (requires) VALUES (6);
DROP TRIGGER checkpoints_extend;
-- +goose StatementBegin
CREATE TRIGGER checkpoints_extend BEFORE INSERT ON checkpoints
WHEN EXISTS (SELECT 1 FROM checkpoints WHERE size >= NEW.size)
BEGIN SELECT RAISE(ABORT, 'checkpoint does not extend the latest one'); END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER checkpoints_extend;
-- +goose StatementBegin
CREATE TRIGGER checkpoints_extend BEFORE INSERT ON checkpoints
WHEN NEW.size <= COALESCE((SELECT MAX(size) FROM checkpoints), 0)
BEGIN SELECT RAISE(ABORT, 'checkpoint does not extend the latest one'); END;
-- +goose StatementEnd
DROP TABLE compatibility;
ALTER TABLE entries RENAME COLUMN subject TO sop_instance_uid;
