-- The strictest TLP among an observation's events (0 CLEAR … 4 RED); NULL: no event was
-- marked, and `[share] default_tlp` decides.
ALTER TABLE observations ADD COLUMN tlp INTEGER;

-- What this node publishes and what partners posted, as STIX objects by TAXII collection.
-- `seq` is the paging cursor and the order of `date_added`; one row per object version.
CREATE TABLE share_objects (
    seq         INTEGER PRIMARY KEY,
    collection  TEXT NOT NULL,
    id          TEXT NOT NULL,
    type        TEXT NOT NULL,
    version     TEXT NOT NULL,
    date_added  INTEGER NOT NULL,
    -- Handling: TLP rank (NULL unmarked), flags (1 sighting, 2 home address, 4 subscriber).
    tlp         INTEGER,
    flags       INTEGER NOT NULL DEFAULT 0,
    -- NULL: published by this node; else the partner that posted it.
    partner     TEXT,
    -- Content digest: a re-publish of the same content is not a new version.
    digest      TEXT NOT NULL,
    body        TEXT NOT NULL,
    UNIQUE (collection, id, version)
);
CREATE INDEX share_objects_id ON share_objects (collection, id);
-- Pages read a collection in `seq` order from a cursor: without this, every page would sort
-- the whole collection.
CREATE INDEX share_objects_seq ON share_objects (collection, seq);

-- TAXII status resources for POSTed envelopes.
CREATE TABLE share_status (
    id          TEXT PRIMARY KEY,
    collection  TEXT NOT NULL,
    partner     TEXT,
    created     INTEGER NOT NULL,
    body        TEXT NOT NULL
);

-- What went to whom and what came from whom: one row per exchange.
CREATE TABLE share_audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    partner     TEXT NOT NULL,
    direction   TEXT NOT NULL,   -- sent (delivered) | exported (written for them) | received
    channel     TEXT NOT NULL,   -- taxii-get, taxii-post, taxii-push, taxii-pull, stix-export, misp-feed
    collection  TEXT,
    objects     INTEGER NOT NULL,
    withheld    INTEGER NOT NULL DEFAULT 0,
    tlp_max     TEXT,
    error       TEXT
);
CREATE INDEX share_audit_partner ON share_audit (partner, at);

-- Pull state per partner collection: the newest date_added seen (TAXII added_after).
CREATE TABLE share_pull_state (
    partner     TEXT NOT NULL,
    url         TEXT NOT NULL,
    added_after TEXT,
    last_pull   INTEGER,
    last_error  TEXT,
    PRIMARY KEY (partner, url)
);

-- Federated aggregates, from this node (node = '') and from peers.
CREATE TABLE federation_cells (
    node        TEXT NOT NULL,
    day         TEXT NOT NULL,
    cc          TEXT NOT NULL,
    asn         INTEGER NOT NULL,
    family      TEXT NOT NULL,
    infected    INTEGER NOT NULL,
    new_cases   INTEGER NOT NULL,
    remediation_hours_median REAL,
    noised      INTEGER NOT NULL DEFAULT 0,
    bar_version TEXT,
    compliance  TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (node, day, cc, asn, family)
);

-- Differential-privacy budget spent per release.
CREATE TABLE federation_releases (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    epsilon     REAL,
    cells       INTEGER NOT NULL,
    suppressed  INTEGER NOT NULL
);
