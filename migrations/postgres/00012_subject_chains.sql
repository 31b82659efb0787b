-- Subject chains and the subject map (docs/entries.md "Subject chains").
--
-- Entries about a study or a patient now carry, in their body's `chain`
-- member, their place in that subject's chain, and every checkpoint ends
-- with a `subject-map` entry: a binary older than this migration would
-- refuse both (version 2 bodies, kind subject-map), so `compatibility` is
-- raised.
--
-- subject_links: each chained entry's links, derived from the bodies at
-- sequencing time (heads for the next entry, chains for proofs); they
-- prove nothing by themselves. subject_map_nodes: the map's prefix-tree
-- nodes, each stored at the version (the index of the subject-map entry)
-- that changed it, never rewritten, so the map of every checkpoint stays
-- provable. Both are append-only (the service role may only INSERT and
-- SELECT, migrate.go; triggers refuse the owner's edits too).
--
-- patients: the random salt each patient's subject key is derived from,
-- by Patient ID. It is correctable identity, like `identity`: deleting a
-- row (as the owner) leaves the patient's chain in the log with no way to
-- name whose it is (a later ingest for that Patient ID starts a new chain).

-- +goose Up
CREATE TABLE subject_links (
    subject   BYTEA  NOT NULL CHECK (length(subject) = 32),
    seq       BIGINT NOT NULL CHECK (seq >= 1),
    idx       BIGINT NOT NULL REFERENCES entries (idx),
    leaf_hash BYTEA  NOT NULL CHECK (length(leaf_hash) = 32),
    PRIMARY KEY (subject, seq)
);
CREATE INDEX subject_links_by_idx ON subject_links (idx);
CREATE TABLE subject_map_nodes (
    label       BYTEA  NOT NULL,
    version     BIGINT NOT NULL,
    left_label  BYTEA  NOT NULL,
    right_label BYTEA  NOT NULL,
    hash        BYTEA  NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (label, version)
);
CREATE TABLE patients (
    patient_id TEXT  PRIMARY KEY,
    salt       BYTEA NOT NULL CHECK (length(salt) = 32)
);
CREATE TRIGGER subject_links_append_only BEFORE UPDATE OR DELETE ON subject_links FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER subject_links_no_truncate BEFORE TRUNCATE ON subject_links FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER subject_map_nodes_append_only BEFORE UPDATE OR DELETE ON subject_map_nodes FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER subject_map_nodes_no_truncate BEFORE TRUNCATE ON subject_map_nodes FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
UPDATE compatibility SET requires = 12;

-- +goose Down
UPDATE compatibility SET requires = 11;
DROP TABLE patients;
DROP TABLE subject_map_nodes;
DROP TABLE subject_links;
