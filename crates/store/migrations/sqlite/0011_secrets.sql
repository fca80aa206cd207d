-- Keys botwatch generates on first use and keeps with the data they protect: the key that
-- signs notice links and webhooks when the config sets none, the key that pseudonymises
-- subscriber ids. Stored once, never rotated silently (rotating either breaks what was
-- signed or pseudonymised with it).
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
