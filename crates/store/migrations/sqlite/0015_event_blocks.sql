-- Events as compressed blocks (see blocks.rs): one row per block of up to 2,048 consecutive
-- events of one report, instead of a ~740-byte row per event. The events stored so far are
-- moved into blocks by the migration's own code, which then drops the `events` table.
CREATE TABLE event_blocks (
    last_id    INTEGER PRIMARY KEY,  -- the block's newest event id; blocks never overlap
    first_id   INTEGER NOT NULL,
    report_id  INTEGER NOT NULL REFERENCES reports(id),
    count      INTEGER NOT NULL,
    day_min    INTEGER NOT NULL,     -- days since 1970-01-01 of its events' times
    day_max    INTEGER NOT NULL,
    lean       BLOB NOT NULL,        -- zstd: ids, times, address, subject, type, … by column
    body       BLOB NOT NULL         -- zstd: IntelMQ documents, then raw lines
);
CREATE INDEX event_blocks_day ON event_blocks (day_min);
-- One row per stored event: its fingerprint makes a re-sent event a duplicate. The time is
-- part of the fingerprint, so a duplicate is always on the same day; keyed by day first, a
-- day's inserts stay together however large the table grows, and retention drops a range.
CREATE TABLE event_keys (
    day          INTEGER NOT NULL,
    fingerprint  INTEGER NOT NULL,
    PRIMARY KEY (day, fingerprint)
) WITHOUT ROWID;
-- The events of each observation by day: how events are found by address (observations
-- are indexed by address; an observation's days lie between its first and last sighting).
CREATE TABLE event_obs (
    day             INTEGER NOT NULL,
    observation_id  INTEGER NOT NULL,
    event_id        INTEGER NOT NULL,
    PRIMARY KEY (day, observation_id, event_id)
) WITHOUT ROWID;
-- The next event id: ids only grow, even when retention removes the newest blocks.
CREATE TABLE event_seq (next INTEGER NOT NULL);
INSERT INTO event_seq SELECT COALESCE(MAX(id), 0) + 1 FROM events;
-- Figures shown on every scrape and dashboard view, kept by the writers in their own
-- transactions instead of being counted again each time.
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters SELECT 'events', COUNT(*) FROM events;
