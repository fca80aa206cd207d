-- Subscriber attribution: lease, accounting and CGNAT port-block records, one row per
-- interval, grouped by the file they came from (re-importing a file hash is a no-op).
CREATE TABLE lease_imports (
    id          INTEGER PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    format      TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    rejects     INTEGER NOT NULL
);

-- No secondary index: the attribution index is built in memory from a full scan, and
-- every index here would slow the bulk import.
CREATE TABLE leases (
    import_id   INTEGER NOT NULL REFERENCES lease_imports(id),
    ip          TEXT NOT NULL,
    port_lo     INTEGER,
    port_hi     INTEGER,
    start_us    INTEGER NOT NULL,
    end_us      INTEGER,
    subscriber  TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    source      TEXT NOT NULL,
    line        INTEGER NOT NULL
);
