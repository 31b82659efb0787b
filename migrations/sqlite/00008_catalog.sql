-- The DICOMweb search index (QIDO-RS, package catalog): one row per
-- indexed instance, its matching keys and its top-level attributes as
-- DICOM JSON. Names and IDs are patient data, so they live here, in an
-- ordinary correctable table, never in the log: an identity correction
-- rewrites its row in place (ledger_index says which version it shows, and
-- an older version never replaces a newer one), and the whole table can be
-- emptied and rebuilt from the instances. It proves nothing. Older
-- binaries never read it, so `compatibility` is left alone; the audit log
-- takes the shared migrations only up to 7, so audit.db never has it.
--
-- study_date is DA text (YYYYMMDD) or '' so that ranges compare as text;
-- patient_name_folded is patient_name lower-cased in Go (catalog.FoldName),
-- the form fuzzy matching reads: SQLite's own lower() and LIKE fold ASCII
-- only, and the two backends must agree. Key columns use the default
-- BINARY collation: GLOB on them is case-sensitive and can use their index.
-- indexed_at is RFC 3339 UTC text.

-- +goose Up
CREATE TABLE catalog (
    sop_instance_uid    TEXT    PRIMARY KEY,
    study_instance_uid  TEXT    NOT NULL,
    series_instance_uid TEXT    NOT NULL,
    sop_class_uid       TEXT    NOT NULL,
    patient_name        TEXT    NOT NULL,
    patient_name_folded TEXT    NOT NULL,
    patient_id          TEXT    NOT NULL,
    accession_number    TEXT    NOT NULL,
    study_date          TEXT    NOT NULL,
    study_time          TEXT    NOT NULL,
    study_description   TEXT    NOT NULL,
    modality            TEXT    NOT NULL,
    series_number       INTEGER,
    instance_number     INTEGER,
    transfer_syntax_uid TEXT    NOT NULL,
    ledger_index        INTEGER NOT NULL CHECK (ledger_index >= 0),
    file_sha256         TEXT    NOT NULL,
    attributes          TEXT    NOT NULL,
    indexed_at          TEXT    NOT NULL
) STRICT;
CREATE INDEX catalog_by_study ON catalog (study_instance_uid, series_instance_uid);
CREATE INDEX catalog_by_series ON catalog (series_instance_uid);
CREATE INDEX catalog_by_patient_name ON catalog (patient_name);
CREATE INDEX catalog_by_patient_id ON catalog (patient_id);
CREATE INDEX catalog_by_accession_number ON catalog (accession_number);
CREATE INDEX catalog_by_study_date ON catalog (study_date);
CREATE INDEX catalog_by_modality ON catalog (modality);

-- +goose Down
DROP TABLE catalog;
