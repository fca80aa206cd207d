-- Cases: one row per (subscriber or address, threat); `key` is what makes two sightings the
-- same case, so it is unique and a re-infection re-opens the same row.
CREATE TABLE cases (
    id                  INTEGER PRIMARY KEY,
    key                 TEXT NOT NULL UNIQUE,
    state               TEXT NOT NULL,
    level               INTEGER NOT NULL DEFAULT 0,
    org                 TEXT,
    subscriber          TEXT,
    ip                  BLOB,
    threat              TEXT NOT NULL,
    type                TEXT NOT NULL,
    opened_at           INTEGER NOT NULL,
    first_seen          INTEGER NOT NULL,
    last_seen           INTEGER NOT NULL,
    evidence            INTEGER NOT NULL DEFAULT 0,
    evidence_at_notice  INTEGER NOT NULL DEFAULT 0,
    notices             INTEGER NOT NULL DEFAULT 0,
    episode_notices     INTEGER NOT NULL DEFAULT 0,
    first_notified_at   INTEGER,
    last_notified_at    INTEGER,
    acknowledged_at     INTEGER,
    escalated_at        INTEGER,
    stage_since         INTEGER,
    closed_at           INTEGER,
    close_reason        TEXT,
    reinfections        INTEGER NOT NULL DEFAULT 0,
    last_event_id       INTEGER,
    -- The latest few sightings (JSON array), quoted in notices without touching events.
    recent              TEXT NOT NULL DEFAULT '[]',
    -- Earliest instant a time-driven transition can be due; NULL when closed. `tick` reads
    -- only the rows whose time has come.
    next_check          INTEGER
);
CREATE INDEX cases_next_check ON cases (next_check) WHERE next_check IS NOT NULL;
CREATE INDEX cases_org ON cases (org, state);
CREATE INDEX cases_subscriber ON cases (subscriber);
CREATE INDEX cases_ip ON cases (ip);

-- Every state change: who, what, when.
CREATE TABLE case_history (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    level       INTEGER NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX case_history_case ON case_history (case_id, id);

-- Exposed vulnerable services (scan feeds) attributed to a subscriber or address: the
-- per-subscriber security bar reads these.
CREATE TABLE case_exposures (
    event_id    INTEGER PRIMARY KEY,
    time        INTEGER NOT NULL,
    ip          BLOB NOT NULL,
    port        INTEGER,
    subscriber  TEXT,
    org         TEXT,
    type        TEXT NOT NULL,
    identifier  TEXT
);
CREATE INDEX case_exposures_subscriber ON case_exposures (subscriber, time);
CREATE INDEX case_exposures_ip ON case_exposures (ip, time);

-- The last event id the case engine has processed: `process` is incremental and
-- re-running it over the same events changes nothing.
CREATE TABLE case_cursor (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id  INTEGER NOT NULL
);
INSERT INTO case_cursor (id, last_event_id) VALUES (1, 0);
