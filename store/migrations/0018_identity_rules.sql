-- Merging on shared verified traits (#13, rules/identity.yaml, off by default): an identify
-- carrying a verified email or phone looks for customers whose stored traits carry the same
-- value (store/identity_rules.py). These indexes hold the values as the rules compare them
-- (engine/identity_rules.py: emails trimmed and lower-cased, phones as a leading + and their
-- digits); values longer than 320 characters name no one and stay out (an index row has a
-- size limit, and traits come from any write key). A rule on another trait finds its
-- matches without an index.
CREATE INDEX customers_email_match ON customers ((lower(btrim(traits ->> 'email', E' \t\n\r'))))
    WHERE traits ? 'email' AND length(traits ->> 'email') <= 320;
CREATE INDEX customers_phone_match ON customers ((
    CASE WHEN btrim(traits ->> 'phone', E' \t\n\r') LIKE '+%' THEN '+' ELSE '' END
    || regexp_replace(traits ->> 'phone', '[^0-9]', '', 'g')))
    WHERE traits ? 'phone' AND length(traits ->> 'phone') <= 320;
