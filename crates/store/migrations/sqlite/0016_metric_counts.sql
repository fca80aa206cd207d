-- What /metrics and the dashboard show on every view, kept up to date by triggers in the
-- transaction of each change, so nothing is counted again (1M cases took a scan per scrape).
-- No trigger inserts with a conflict clause: the outer statement's clause overrides a
-- trigger's own (notices are written with `INSERT OR IGNORE`; an outer REPLACE would reset a
-- count), so rows are added only where missing, with no conflict to resolve.
-- Per feed: reports, and events, rejects and duplicates stored ever (retention does not
-- lower these: they are counters of what arrived).
CREATE TABLE feed_counts (
    feed        TEXT PRIMARY KEY,
    reports     INTEGER NOT NULL DEFAULT 0,
    events      INTEGER NOT NULL DEFAULT 0,
    rejects     INTEGER NOT NULL DEFAULT 0,
    duplicates  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO feed_counts (feed, reports, events, rejects, duplicates)
    SELECT feed, COUNT(*), SUM(events), SUM(rejects), SUM(duplicates) FROM reports GROUP BY feed;
CREATE TRIGGER feed_counts_report AFTER INSERT ON reports BEGIN
    INSERT INTO feed_counts (feed) SELECT NEW.feed WHERE NOT EXISTS (SELECT 1 FROM feed_counts WHERE feed = NEW.feed);
    UPDATE feed_counts SET reports = reports + 1, events = events + NEW.events, rejects = rejects + NEW.rejects,
        duplicates = duplicates + NEW.duplicates WHERE feed = NEW.feed;
END;
CREATE TRIGGER feed_counts_totals AFTER UPDATE OF events, rejects, duplicates ON reports BEGIN
    UPDATE feed_counts SET events = events + NEW.events - OLD.events, rejects = rejects + NEW.rejects - OLD.rejects,
        duplicates = duplicates + NEW.duplicates - OLD.duplicates WHERE feed = NEW.feed;
END;

-- Rows per status: notices in the outbox ('notice', status) and cases ('case', state).
CREATE TABLE status_counts (
    kind    TEXT NOT NULL,
    status  TEXT NOT NULL,
    n       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, status)
) WITHOUT ROWID;
INSERT INTO status_counts SELECT 'notice', status, COUNT(*) FROM outbox GROUP BY status;
INSERT INTO status_counts SELECT 'case', state, COUNT(*) FROM cases GROUP BY state;
CREATE TRIGGER status_counts_notice_new AFTER INSERT ON outbox BEGIN
    INSERT INTO status_counts (kind, status) SELECT 'notice', NEW.status
        WHERE NOT EXISTS (SELECT 1 FROM status_counts WHERE kind = 'notice' AND status = NEW.status);
    UPDATE status_counts SET n = n + 1 WHERE kind = 'notice' AND status = NEW.status;
END;
CREATE TRIGGER status_counts_notice_moved AFTER UPDATE OF status ON outbox WHEN OLD.status IS NOT NEW.status BEGIN
    INSERT INTO status_counts (kind, status) SELECT 'notice', NEW.status
        WHERE NOT EXISTS (SELECT 1 FROM status_counts WHERE kind = 'notice' AND status = NEW.status);
    UPDATE status_counts SET n = n + 1 WHERE kind = 'notice' AND status = NEW.status;
    UPDATE status_counts SET n = n - 1 WHERE kind = 'notice' AND status = OLD.status;
END;
CREATE TRIGGER status_counts_notice_gone AFTER DELETE ON outbox BEGIN
    UPDATE status_counts SET n = n - 1 WHERE kind = 'notice' AND status = OLD.status;
END;
-- Cases are counted by their writer (`SqliteCaseTx`), not by triggers: a trigger on `cases`
-- makes SQLite keep a statement journal for each case written, a tenth of `cases update`.
