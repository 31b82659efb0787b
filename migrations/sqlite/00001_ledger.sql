-- The custody ledger. `entries` is the append-only log: its canonical bytes
-- (`body`) are what leaf hashes and signatures cover. `instances` is the
-- unique claim of each SOP Instance UID, written in the same transaction as
-- its ingest entry so that two first ingests cannot both win. `incidents`
-- counts repeats of one conflict or integrity failure, so that a retrying
-- client cannot flood a log that is never pruned. `identity` is ordinary
-- and correctable on purpose: it holds the salts that open the patient
-- commitments in the log; deleting a row erases the link (crypto-shredding).

-- +goose Up
CREATE TABLE entries (
    idx              INTEGER PRIMARY KEY,
    kind             TEXT    NOT NULL,
    sop_instance_uid TEXT    NOT NULL,
    file_sha256      TEXT    NOT NULL,
    body             BLOB    NOT NULL,
    leaf_hash        BLOB    NOT NULL
) STRICT;
CREATE INDEX entries_by_sop ON entries (sop_instance_uid);
CREATE INDEX entries_by_sha ON entries (file_sha256);

CREATE TABLE instances (
    sop_instance_uid TEXT    PRIMARY KEY,
    entry_idx        INTEGER NOT NULL REFERENCES entries (idx),
    file_sha256      TEXT    NOT NULL
) STRICT;

CREATE TABLE incidents (
    kind             TEXT    NOT NULL,
    sop_instance_uid TEXT    NOT NULL,
    incident_key     TEXT    NOT NULL,
    entry_idx        INTEGER NOT NULL REFERENCES entries (idx),
    count            INTEGER NOT NULL,
    last_seen        TEXT    NOT NULL,
    PRIMARY KEY (kind, sop_instance_uid, incident_key)
) STRICT;

CREATE TABLE identity (
    file_sha256        TEXT PRIMARY KEY,
    salt               BLOB NOT NULL,
    patient_name       TEXT NOT NULL,
    patient_id         TEXT NOT NULL,
    patient_birth_date TEXT NOT NULL
) STRICT;

-- +goose StatementBegin
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER instances_no_update BEFORE UPDATE ON instances
BEGIN SELECT RAISE(ABORT, 'instance claims are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER instances_no_delete BEFORE DELETE ON instances
BEGIN SELECT RAISE(ABORT, 'instance claims are append-only'); END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE identity;
DROP TABLE incidents;
DROP TABLE instances;
DROP TABLE entries;
