-- Custody events and the fixity scrubber (docs/entries.md, package fixity).
--
-- The log now holds entries of kinds transfer, export, storage-migration,
-- fixity and repair, which a binary older than this migration would refuse
-- (kind unknown) in `log verify` and in every scan: `compatibility` is
-- raised so that such a binary refuses to start instead.
--
-- leases: one holder at a time per name (the scrubber's "scrub"), until
-- expires_at (RFC 3339, UTC, the holder's clock); released by setting it
-- in the past. scrub_progress: the pass in hand, as JSON (fixity.Progress),
-- so that a restart resumes it. Both are correctable state, updated in
-- place, and prove nothing: the fixity entries in the log do.

-- +goose Up
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
CREATE TABLE scrub_progress (
    name       TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
UPDATE compatibility SET requires = 9;

-- +goose Down
UPDATE compatibility SET requires = 6;
DROP TABLE scrub_progress;
DROP TABLE leases;
