-- Verified streaming (README "Verified streaming", docs/entries.md).
--
-- Attesting entries (ingest, revision, identity-correction) are now
-- version 3 bodies, listing their file's chunk leaves, and their
-- statements carry predicate `…/dicom-instance/v3`: a binary older than
-- this migration would refuse both, so `compatibility` is raised. No
-- table changes: the leaves live in the entries themselves. Schema
-- dicomseal_audit takes the shared migrations only up to 9.

-- +goose Up
UPDATE compatibility SET requires = 13;

-- +goose Down
UPDATE compatibility SET requires = 12;
