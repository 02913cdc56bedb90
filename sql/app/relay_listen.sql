-- The relay's dedicated connection listens on the channel that the
-- outbox_event insert trigger notifies after commit.
LISTEN jobsd_outbox;
