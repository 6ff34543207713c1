-- Channels are a registry in code (channels/), not a list in the schema (#11): a new
-- channel is one module there, and the registry checks a channel's name before anything
-- reaches these tables. Dropping a CHECK keeps every row.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_channel_check;
ALTER TABLE consent DROP CONSTRAINT IF EXISTS consent_channel_check;
