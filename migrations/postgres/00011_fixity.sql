-- Custody events and the fixity scrubber (docs/entries.md, package fixity).
--
-- The log now holds entries of kinds transfer, export, storage-migration,
-- fixity and repair, which a binary older than this migration would refuse
-- (kind unknown) in `log verify` and in every scan: `compatibility` is
-- raised so that such a binary refuses to start instead.
--
-- leases: one holder at a time per name (the scrubber's "scrub", one
-- replica at a time), until expires_at (the holder's clock); released by
-- setting it in the past. scrub_progress: the pass in hand, as JSON
-- (fixity.Progress), so that a restart resumes it. Both are correctable
-- state, updated in place (the service role may UPDATE them, migrate.go),
-- and prove nothing: the fixity entries in the log do. Schema
-- dicomseal_audit takes the shared migrations only up to 9.

-- +goose Up
CREATE TABLE leases (
    name       TEXT        PRIMARY KEY,
    holder     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE scrub_progress (
    name       TEXT        PRIMARY KEY,
    state      TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
UPDATE compatibility SET requires = 11;

-- +goose Down
UPDATE compatibility SET requires = 8;
DROP TABLE scrub_progress;
DROP TABLE leases;
