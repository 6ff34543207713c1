-- A message deferred because the customer's profile lacks the channel's address
-- (await_contact) names the trait it waits for. The identify that brings it wakes the
-- customer's workflow at once (ingest/accept.py, a `contact_added` event), instead of the
-- workflow looking again every 15 s to 2 min: a customer who never gives an email costs
-- one timer, not a dozen workflow tasks. Cleared by every other status change.
ALTER TABLE messages ADD COLUMN awaits text;
CREATE INDEX messages_awaiting ON messages (customer_id) WHERE awaits IS NOT NULL;
