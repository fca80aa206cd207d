-- API tokens and web sessions' credentials: only the SHA-256 of a token is stored, so a
-- copy of the database does not let anyone in.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    org         TEXT,
    hash        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    last_used   INTEGER,
    revoked_at  INTEGER
);
