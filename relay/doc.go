// Package relay forwards outbox events to RabbitMQ: it claims pending
// outbox_event rows under a lease, publishes them with pipelined publisher
// confirms and marks them published only once the broker confirmed them.
//
// It may import pgx, amqp091-go, the Prometheus client and the sql package;
// not River, the CLI or other jobsd packages.
//
// # Claim, lease, publish, mark
//
// A claim is one short UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED)
// statement (sql/app/relay_claim.sql) that sets claimed_by and claimed_until
// on up to BatchSize pending rows and returns them. No transaction stays open
// while the relay talks to the broker. The relay publishes the rows on one
// confirm-mode channel, up to Window messages awaiting their confirm at once,
// and claims the next batch while the current one is in flight. A confirmed
// (acked) row is marked published in bulk (one UPDATE ... WHERE id = ANY($1)
// per round; with Retention 0 it is deleted instead). A row that is nacked,
// returned (with Mandatory), or that cannot be encoded as a message counts an
// attempt, records last_error and is retried after an exponential backoff; after
// MaxAttempts it becomes dead. A row that was published but not confirmed
// because the connection or channel went away is released (lease cleared, no
// attempt counted) and published again: delivery is at least once, and
// consumers dedupe on the message id.
//
// The broker closes a channel over one bad message (for instance a "CC" header
// that is a string instead of an array: 406 PRECONDITION_FAILED). The relay
// cannot tell from the close which of the unconfirmed messages it was, so it
// opens a new channel and publishes those messages again one at a time,
// waiting for each confirm: the one that closes the channel again is the
// culprit and fails; the others go through.
//
// A relay that dies (SIGKILL) keeps its rows until their lease ends; then any
// relay claims them. The relay publishes a batch only while at least
// min(Lease/2, 5s) of its lease remains, so that two relays never publish the
// same claimed rows at the same time unless one of them stalls for that long.
//
// # Never skipping a row
//
// Claims select by state, never by a "last id seen" high-water mark. A row
// whose transaction commits after rows with higher ids were published is
// still pending when it becomes visible, and the next claim takes it.
//
// # Per-key order with several relays
//
// Events with the same key reach the broker in commit order. outbox.Write
// takes a per-key advisory lock until commit, so within one key ids follow
// commit order. The claim then takes, per key, only the contiguous run of
// pending rows that starts at the key's earliest pending row (its head), and
// only when the head is free (lease empty or expired) and available
// (available_at <= now()): a key whose head is leased by another relay or
// backing off after a failed publish is not claimable at all, so a poison row
// blocks its own key until it is dead while other keys flow. Inside the
// statement, a candidate row is dropped when an earlier pending row of its key
// is not part of the same claim (leased elsewhere, backing off, or locked by a
// concurrent claim that SKIP LOCKED passed over). Rows that this relay leased
// itself do not block it: they are ahead in its own pipeline, which publishes
// in claim order on a single channel. So at any time the unpublished rows of a
// key belong to at most one relay, which publishes them in id order. The
// partial index (key, id) WHERE state = 'pending' serves the per-key lookups.
//
// When a row fails or is released, later rows of its key that were claimed
// but not yet published must not overtake it: every failure or release bumps
// an epoch, and the publisher releases (instead of publishing) the rest of any
// batch claimed before the bump. Rows already sent when a failure is reported
// (at most a window) can still reach the broker before the failed row's retry;
// that is the one case where per-key order is not kept, and it needs a broker
// refusal. Rows inserted by plain SQL take no advisory lock, so for them ids
// follow insertion, not commit order.
//
// # Waking up
//
// A trigger on outbox_event notifies jobsd_outbox after each inserting
// transaction commits; the relay LISTENs on a dedicated connection (not taken
// from the pool) and claims at once. It also polls every PollInterval (rows
// whose backoff or lease ran out, notifications missed while LISTEN was
// down), and claims again immediately after a full batch. PollOnly turns
// LISTEN off for PgBouncer in transaction mode.
//
// # Broker outages
//
// The relay reconnects with capped exponential backoff (100ms to 10s, with
// jitter). Meanwhile rows stay pending, nothing is claimed, and
// BrokerConnected reports false. A lost connection releases the unconfirmed
// rows; they drain when the broker is back. The exchange (a durable fanout)
// is declared at every connection.
//
// # Retention
//
// A separate goroutine deletes published rows older than Retention, at most
// 1000 per statement, never in the publish path.
package relay
