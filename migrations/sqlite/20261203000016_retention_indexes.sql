-- Retention finds what it prunes through an index, never by reading the whole table
-- (store::prune runs once a minute on every process).
CREATE INDEX refresh_families_revoked_at ON refresh_families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
CREATE INDEX email_outbox_done ON email_outbox (created_at) WHERE status <> 'queued';
CREATE INDEX api_usage_day ON api_usage (day);
