-- A refresh is keyed by the workflow run that asked for it, so a retried activity finds
-- the refresh it already made instead of making another (which would see no changes and
-- leave the first one's customers untold).
ALTER TABLE segment_refreshes ADD COLUMN request_key text UNIQUE;
