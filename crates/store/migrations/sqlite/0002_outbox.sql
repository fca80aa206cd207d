-- The durable outbox: every notice to be delivered, written in the same transaction as the
-- case change that caused it. `key` is the idempotency key (one notice per key, ever);
-- `message_id` is fixed at enqueue time so a re-send after a crash carries the same id.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    message_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    lang         TEXT NOT NULL DEFAULT 'en',
    org          TEXT,
    case_id      INTEGER,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    due_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    status       TEXT NOT NULL DEFAULT 'pending',
    sent_at      INTEGER
);
CREATE INDEX outbox_pending ON outbox (status, due_at);
CREATE INDEX outbox_recipient ON outbox (recipient, sent_at);
