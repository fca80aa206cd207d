-- Claims: a runner takes due notices by writing its id and a lease expiry, in one write
-- transaction, so any number of `notify run` processes deliver each notice once. A notice
-- moves to 'sending' (still claimed) just before it is handed to a transport; closing a case
-- cancels only what is still 'pending', so a notice is never recorded 'cancelled' after it
-- went out. A runner that dies leaves its claims to expire, and another resumes them.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claim_until INTEGER;
-- What was delivered per case (compliance counts a case notified only when a transport
-- accepted a notice), the /verify look-up by Message-ID, and the generation of case
-- figures (changes when anything is sent).
CREATE INDEX outbox_case ON outbox (case_id, status, sent_at);
CREATE INDEX outbox_message_id ON outbox (message_id);
CREATE INDEX outbox_sent_at ON outbox (sent_at);
