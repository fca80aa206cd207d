-- `botwatch worker`: how far behind the JetStream consumer is, as a worker last saw it, so
-- `serve` (another process, another machine) shows it on /metrics without a NATS client.
CREATE TABLE stream_lag (
    stream      TEXT NOT NULL,
    consumer    TEXT NOT NULL,
    pending     INTEGER NOT NULL,
    ack_pending INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (stream, consumer)
);
