-- The audit log uses the same tables in its own schema (dicomseal_audit).
-- The checkpoint check must read the checkpoints of the schema it was
-- created in, whichever that is: pin its search_path at creation.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION checkpoint_extends() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.size <= COALESCE((SELECT max(size) FROM checkpoints), 0) THEN
        RAISE EXCEPTION 'checkpoint of size % does not extend the latest one', NEW.size
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- +goose Down
SELECT 1;
