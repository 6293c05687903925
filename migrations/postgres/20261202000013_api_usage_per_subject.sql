-- Daily API calls per client and subject (the token's `sub`; '' when counted per client),
-- so that the daily cap of one user of an app is not spent by another.
ALTER TABLE api_usage ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE api_usage ALTER COLUMN subject DROP DEFAULT;
ALTER TABLE api_usage DROP CONSTRAINT api_usage_pkey;
ALTER TABLE api_usage ADD PRIMARY KEY (client_id, subject, day);
