-- Figures shown on every scrape and dashboard view, kept by the writers and by retention in
-- their own transactions instead of being counted again each time (as SQLite's 0015).
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO counters SELECT 'events', COUNT(*) FROM events;
INSERT INTO counters SELECT 'reports', COUNT(*) FROM reports;
INSERT INTO counters SELECT 'observations', COUNT(*) FROM observations;
INSERT INTO counters SELECT 'rejects', COUNT(*) FROM rejects;
