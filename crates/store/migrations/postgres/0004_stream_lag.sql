-- `botwatch worker`'s view of its JetStream consumer's backlog (SQLite migration 0014).
CREATE TABLE stream_lag (
    stream      text NOT NULL,
    consumer    text NOT NULL,
    pending     bigint NOT NULL,
    ack_pending bigint NOT NULL,
    at          bigint NOT NULL,
    PRIMARY KEY (stream, consumer)
);
