-- The custody ledger, in schema dicomseal (created by `dicomseal migrate`,
-- owned by the owner role; migrations run as that role). `entries` is the
-- append-only log; `instances` the unique claim of each SOP Instance UID,
-- written in the same transaction as its ingest entry; `incidents` counts
-- repeats of one conflict or integrity failure; `identity` is ordinary and
-- correctable on purpose: it holds the salts that open the patient
-- commitments in the log, and deleting a row erases the link.
--
-- Triggers refuse UPDATE, DELETE and TRUNCATE of history even to the
-- owner; the service role is granted only INSERT and SELECT on it. A
-- superuser can still disable triggers: tamper-evidence comes from the
-- Merkle tree and signed checkpoints, not from here.

-- +goose Up
CREATE TABLE entries (
    idx              BIGINT PRIMARY KEY,
    kind             TEXT   NOT NULL,
    sop_instance_uid TEXT   NOT NULL,
    file_sha256      TEXT   NOT NULL,
    body             BYTEA  NOT NULL,
    leaf_hash        BYTEA  NOT NULL
);
CREATE INDEX entries_by_sop ON entries (sop_instance_uid);
CREATE INDEX entries_by_sha ON entries (file_sha256);

CREATE TABLE instances (
    sop_instance_uid TEXT   PRIMARY KEY,
    entry_idx        BIGINT NOT NULL REFERENCES entries (idx),
    file_sha256      TEXT   NOT NULL
);

CREATE TABLE incidents (
    kind             TEXT        NOT NULL,
    sop_instance_uid TEXT        NOT NULL,
    incident_key     TEXT        NOT NULL,
    entry_idx        BIGINT      NOT NULL REFERENCES entries (idx),
    count            BIGINT      NOT NULL,
    last_seen        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, sop_instance_uid, incident_key)
);

CREATE TABLE identity (
    file_sha256        TEXT  PRIMARY KEY,
    salt               BYTEA NOT NULL,
    patient_name       TEXT  NOT NULL,
    patient_id         TEXT  NOT NULL,
    patient_birth_date TEXT  NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dicomseal.% is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER instances_append_only BEFORE UPDATE OR DELETE ON instances FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER instances_no_truncate BEFORE TRUNCATE ON instances FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- +goose Down
DROP TABLE identity;
DROP TABLE incidents;
DROP TABLE instances;
DROP TABLE entries;
DROP FUNCTION refuse_change();
