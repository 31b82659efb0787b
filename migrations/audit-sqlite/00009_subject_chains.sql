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
-- provable. Both are append-only.
--
-- The audit log chains its entries by study only (the study of the object
-- a request touched); patients are the custody log's.

-- +goose Up
CREATE TABLE subject_links (
    subject   BLOB    NOT NULL CHECK (length(subject) = 32),
    seq       INTEGER NOT NULL CHECK (seq >= 1),
    idx       INTEGER NOT NULL REFERENCES entries (idx),
    leaf_hash BLOB    NOT NULL CHECK (length(leaf_hash) = 32),
    PRIMARY KEY (subject, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX subject_links_by_idx ON subject_links (idx);
CREATE TABLE subject_map_nodes (
    label       BLOB    NOT NULL,
    version     INTEGER NOT NULL,
    left_label  BLOB    NOT NULL,
    right_label BLOB    NOT NULL,
    hash        BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (label, version)
) STRICT, WITHOUT ROWID;

-- +goose StatementBegin
CREATE TRIGGER subject_links_no_update BEFORE UPDATE ON subject_links
BEGIN SELECT RAISE(ABORT, 'subject links are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER subject_links_no_delete BEFORE DELETE ON subject_links
BEGIN SELECT RAISE(ABORT, 'subject links are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER subject_map_nodes_no_update BEFORE UPDATE ON subject_map_nodes
BEGIN SELECT RAISE(ABORT, 'subject map nodes are append-only'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER subject_map_nodes_no_delete BEFORE DELETE ON subject_map_nodes
BEGIN SELECT RAISE(ABORT, 'subject map nodes are append-only'); END;
-- +goose StatementEnd
UPDATE compatibility SET requires = 9;

-- +goose Down
UPDATE compatibility SET requires = 8;
DROP TABLE subject_map_nodes;
DROP TABLE subject_links;
