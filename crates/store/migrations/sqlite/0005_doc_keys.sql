-- Per-report dictionary of document keys (JSON array): events of a report stored with it
-- have array documents, values by key position.
ALTER TABLE reports ADD COLUMN doc_keys TEXT;
