-- PORTARIA_RESULT_RETENTION purges results by applied_at across organizations, every minute on
-- every instance: an index keeps that a range scan of what has expired, not a scan of the table.
CREATE INDEX results_by_applied_at ON results (applied_at);
