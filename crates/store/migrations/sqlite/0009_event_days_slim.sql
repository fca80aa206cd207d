-- The per-day rollup summed over fewer dimensions, so a chart reads the smallest table that
-- has what it groups and filters by (see rollup.rs): threats (family, feed) and networks
-- (ASN, country). All three rollup tables are rebuilt from the events when this runs.
CREATE TABLE event_days_threat (
    day       INTEGER NOT NULL,
    type      TEXT NOT NULL,
    family    TEXT NOT NULL,
    feed      TEXT NOT NULL,
    events    INTEGER NOT NULL,
    subjects  BLOB NOT NULL,
    PRIMARY KEY (day, type, family, feed)
) WITHOUT ROWID;
CREATE TABLE event_days_net (
    day       INTEGER NOT NULL,
    type      TEXT NOT NULL,
    asn       INTEGER NOT NULL,
    cc        TEXT NOT NULL,
    events    INTEGER NOT NULL,
    subjects  BLOB NOT NULL,
    PRIMARY KEY (day, type, asn, cc)
) WITHOUT ROWID;
