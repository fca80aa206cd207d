-- Reports: one row per ingested raw report; the content hash makes re-ingest a no-op.
CREATE TABLE reports (
    id            INTEGER PRIMARY KEY,
    sha256        TEXT NOT NULL UNIQUE,
    feed          TEXT NOT NULL,
    name          TEXT,
    source        TEXT,
    size          INTEGER NOT NULL,
    observed_at   INTEGER NOT NULL,
    ingested_at   INTEGER NOT NULL,
    events        INTEGER NOT NULL DEFAULT 0,
    duplicates    INTEGER NOT NULL DEFAULT 0,
    merged        INTEGER NOT NULL DEFAULT 0,
    rejects       INTEGER NOT NULL DEFAULT 0,
    warnings      TEXT NOT NULL DEFAULT '[]',
    archive       TEXT,
    feed_info     TEXT
);

-- Observations: the deduplicated unit, (subject, type, family) within the dedup window.
CREATE TABLE observations (
    id            INTEGER PRIMARY KEY,
    subject       TEXT NOT NULL,
    type          TEXT NOT NULL,
    family        TEXT NOT NULL DEFAULT '',
    ip            BLOB,
    asn           INTEGER,
    cc            TEXT,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    sources       TEXT NOT NULL,
    confidence    REAL NOT NULL
);
CREATE INDEX observations_key ON observations (subject, type, family, last_seen);
CREATE INDEX observations_last_seen ON observations (last_seen);
CREATE INDEX observations_ip ON observations (ip);

-- Events: every accepted line, with its IntelMQ document and raw bytes.
-- Deliberately few indexes: each one costs ~20% of ingest throughput. Address lookups go
-- through observations (one row per IP, type and family, indexed on ip), then here by
-- observation_id.
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    report_id        INTEGER NOT NULL REFERENCES reports(id),
    -- No FOREIGN KEY: observations are written at commit, after their events, and a
    -- deferred constraint made SQLite scan events once per observation.
    observation_id   INTEGER,
    fingerprint      INTEGER NOT NULL,
    line             INTEGER NOT NULL,
    feed             TEXT NOT NULL,
    time_source      INTEGER,
    time_observation INTEGER NOT NULL,
    ip               BLOB,
    subject          TEXT,
    asn              INTEGER,
    cc               TEXT,
    type             TEXT NOT NULL,
    family           TEXT,
    doc              TEXT NOT NULL,
    raw              BLOB NOT NULL
);
CREATE UNIQUE INDEX events_fingerprint ON events (fingerprint);
CREATE INDEX events_observation ON events (observation_id);

-- Rejects: lines that could not become events, kept whole.
CREATE TABLE rejects (
    id         INTEGER PRIMARY KEY,
    report_id  INTEGER NOT NULL REFERENCES reports(id),
    feed       TEXT NOT NULL,
    line       INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    raw        BLOB NOT NULL
);
CREATE INDEX rejects_report ON rejects (report_id);

-- HTTP validators for conditional GET, per fetched URL.
CREATE TABLE fetch_state (
    url            TEXT PRIMARY KEY,
    feed           TEXT NOT NULL,
    etag           TEXT,
    last_modified  TEXT,
    last_fetch     INTEGER,
    last_status    TEXT,
    last_sha256    TEXT
);
