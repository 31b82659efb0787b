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
-- The audit log chains its entries by study only (the study of the object
-- a request touched); patients are the custody log's.

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
CREATE TRIGGER subject_links_append_only BEFORE UPDATE OR DELETE ON subject_links FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER subject_links_no_truncate BEFORE TRUNCATE ON subject_links FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER subject_map_nodes_append_only BEFORE UPDATE OR DELETE ON subject_map_nodes FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER subject_map_nodes_no_truncate BEFORE TRUNCATE ON subject_map_nodes FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
UPDATE compatibility SET requires = 11;

-- +goose Down
UPDATE compatibility SET requires = 10;
DROP TABLE subject_map_nodes;
DROP TABLE subject_links;
