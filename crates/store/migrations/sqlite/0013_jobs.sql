-- `botwatch run`: what each scheduled job last did, and when each intake source last
-- delivered a report (its staleness). Kept in the store so `serve` in another process, the
-- dashboard and /metrics read the same figures the runner wrote.
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    every_secs INTEGER NOT NULL,
    runs INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    running_since INTEGER,
    last_start INTEGER,
    last_end INTEGER,
    last_success INTEGER,
    last_failure INTEGER,
    last_duration_ms INTEGER,
    last_error TEXT,
    last_detail TEXT,
    next_run INTEGER
);

CREATE TABLE intake_sources (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    expected_secs INTEGER NOT NULL,
    -- NULL: never stale (drops into the spool come when they come).
    stale_after_secs INTEGER,
    -- When the source was first configured: staleness counts from here until a first report.
    since INTEGER NOT NULL,
    last_check INTEGER,
    last_report INTEGER,
    reports INTEGER NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
