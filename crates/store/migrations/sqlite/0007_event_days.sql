-- Per-day rollup of events, maintained by the report writer in the report's transaction:
-- statistics and the dashboard read it instead of scanning events. One row per day (of
-- time.source, else time.observation) and (type, family, feed, ASN, country); `subjects`
-- is a mergeable distinct-count sketch of the subjects (see sketch.rs), so ranges of days
-- count an address once. Filled from the stored events by migration 0009.
CREATE TABLE event_days (
    day       INTEGER NOT NULL,  -- days since 1970-01-01, UTC
    type      TEXT NOT NULL,
    family    TEXT NOT NULL,     -- '' when none
    feed      TEXT NOT NULL,
    asn       INTEGER NOT NULL,  -- -1 when none
    cc        TEXT NOT NULL,     -- '' when none
    events    INTEGER NOT NULL,
    subjects  BLOB NOT NULL,
    PRIMARY KEY (day, type, family, feed, asn, cc)
) WITHOUT ROWID;
