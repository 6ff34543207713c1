-- Until when an attempt may still be talking to the provider. Another attempt of the same
-- message (a local activity that timed out while its delivery went on, a workflow task
-- retried on another worker) waits until then instead of delivering a second time.
ALTER TABLE messages ADD COLUMN delivering_until timestamptz;
