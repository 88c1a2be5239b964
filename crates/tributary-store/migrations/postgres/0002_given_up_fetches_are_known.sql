-- content_exists counts an item whose fetch was given up on (a failed or dead job, kept
-- for the operator to retry) as known, like a pending one: otherwise every `start`
-- that lists the item queues its fetch again, and a poison item (one that crashes its
-- worker or always fails) comes back every scheduler interval.
DROP INDEX jobs_pending_item_idx;
CREATE INDEX jobs_item_idx ON jobs (user_integration_id, item_id)
    WHERE item_id IS NOT NULL AND state IN ('available', 'running', 'failed', 'dead');
