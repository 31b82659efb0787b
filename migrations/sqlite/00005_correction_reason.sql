-- The reason a reconciler gave for an identity correction: free text that
-- may name the patient, so it sits beside the other correctable identity
-- values, never in the log. '' for everything but corrections.

-- +goose Up
ALTER TABLE identity ADD COLUMN correction_reason TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE identity DROP COLUMN correction_reason;
