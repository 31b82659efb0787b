-- The DICOMweb search index (QIDO-RS, package catalog): one row per
-- indexed instance, its matching keys and its top-level attributes as
-- DICOM JSON. Names and IDs are patient data, so they live here, in an
-- ordinary correctable table, never in the log: an identity correction
-- rewrites its row in place (ledger_index says which version it shows, and
-- an older version never replaces a newer one), and the whole table can be
-- emptied and rebuilt from the instances. It proves nothing, so it has no
-- append-only trigger, and the service role may UPDATE and DELETE it
-- (migrate.go). Older binaries never read it, so `compatibility` is left
-- alone; schema dicomseal_audit takes the shared migrations only up to 9,
-- so it never has it.
--
-- Text columns are COLLATE "C": UIDs and dates then sort byte by byte, as
-- in SQLite (a linguistic collation ignores the dots of a UID), and LIKE
-- 'prefix%' can use their btree indexes. study_date is DA text (YYYYMMDD)
-- or '' so that ranges compare as text; patient_name_folded is
-- patient_name lower-cased in Go (catalog.FoldName), the form fuzzy
-- matching reads, so that both backends fold alike. attributes is TEXT,
-- not JSONB: it is handed back byte for byte, and JSONB refuses \u0000.

-- +goose Up
CREATE TABLE catalog (
    sop_instance_uid    TEXT COLLATE "C" PRIMARY KEY,
    study_instance_uid  TEXT COLLATE "C" NOT NULL,
    series_instance_uid TEXT COLLATE "C" NOT NULL,
    sop_class_uid       TEXT COLLATE "C" NOT NULL,
    patient_name        TEXT COLLATE "C" NOT NULL,
    patient_name_folded TEXT COLLATE "C" NOT NULL,
    patient_id          TEXT COLLATE "C" NOT NULL,
    accession_number    TEXT COLLATE "C" NOT NULL,
    study_date          TEXT COLLATE "C" NOT NULL,
    study_time          TEXT COLLATE "C" NOT NULL,
    study_description   TEXT COLLATE "C" NOT NULL,
    modality            TEXT COLLATE "C" NOT NULL,
    series_number       INTEGER,
    instance_number     INTEGER,
    transfer_syntax_uid TEXT COLLATE "C" NOT NULL,
    ledger_index        BIGINT      NOT NULL CHECK (ledger_index >= 0),
    file_sha256         TEXT        NOT NULL,
    attributes          TEXT        NOT NULL,
    indexed_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX catalog_by_study ON catalog (study_instance_uid, series_instance_uid);
CREATE INDEX catalog_by_series ON catalog (series_instance_uid);
CREATE INDEX catalog_by_patient_name ON catalog (patient_name);
CREATE INDEX catalog_by_patient_id ON catalog (patient_id);
CREATE INDEX catalog_by_accession_number ON catalog (accession_number);
CREATE INDEX catalog_by_study_date ON catalog (study_date);
CREATE INDEX catalog_by_modality ON catalog (modality);

-- +goose Down
DROP TABLE catalog;
