-- Access tokens issued at or before a cut-off are refused: a disabled user (client_id
-- ''), a disabled client (user_id ''), or a grant a user withdrew (both set). A row is
-- kept until no token issued before it can still be valid (the longest access-token
-- lifetime), then pruned.
CREATE TABLE token_cutoffs (
    user_id   TEXT   NOT NULL,
    client_id TEXT   NOT NULL,
    cut_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX token_cutoffs_cut_at ON token_cutoffs (cut_at);
