// Package relay forwards outbox events to RabbitMQ: it claims pending
// outbox_event rows under a lease, publishes them with pipelined publisher
// confirms and marks them published only once the broker confirmed them.
//
// It may import pgx, amqp091-go, the Prometheus client and the sql package;
// not River, the CLI or other jobsd packages.
//
// # Claim, lease, publish, mark
//
// A claim is one short transaction of two round trips (sql/app/relay_claim_*):
// the first locks up to BatchSize pending, available, unleased rows in id order
// with FOR UPDATE SKIP LOCKED and returns them with their keys' earlier
// pending rows; the second sets claimed_by and claimed_until on the rows that
// may be claimed (see per-key order below) and commits. No transaction stays
// open while the relay talks to the broker. The relay publishes the rows on
// one confirm-mode channel with up to about Window messages awaiting their
// confirm, and claims the next batch while the current one is in flight.
// Confirmed (acked) rows are marked published in bulk, one UPDATE ... WHERE
// id = ANY($1) per round (with RetentionDeleteAtOnce they are deleted instead).
//
// A row that is nacked, returned (with Mandatory) or cannot be encoded as a
// message counts an attempt, records last_error and is retried after an
// exponential backoff; after MaxAttempts it becomes dead. A row published
// without a confirm because the connection or channel went away is released
// (lease cleared, no attempt counted) and published again: delivery is at
// least once, and consumers dedupe on the message id (outbox_event.message_id).
//
// Confirms come from amqp091's DeferredConfirmation, which tracks each tag on
// its own: NotifyPublish loses a nack that arrives before the ack of an
// earlier tag when a multiple ack follows. A broker that does not confirm
// within half the lease is taken as broken and the relay reconnects.
//
// The broker closes a channel over one bad message, for instance a "CC"
// header that is a string instead of an array (406 PRECONDITION_FAILED). The
// close does not say which unconfirmed message it was, so the relay opens a
// new channel and publishes those messages again one at a time, each waiting
// for its confirm: the one that closes the channel again is the culprit and
// fails; the ones before it go through and the ones after it are released.
//
// A relay that dies (SIGKILL) keeps its rows until their lease ends; then any
// relay claims them. A relay publishes a batch only while at least
// min(Lease/2, 5s) of its lease remains, so that two relays do not publish the
// same rows at once unless one of them stalls for that long. A crash
// republishes what the dead relay had published but not marked: the publisher
// pauses while BatchSize confirmed rows wait to be marked, so that is at most
// BatchSize + Window messages.
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
// commit order (rows inserted by plain SQL take no lock: for them ids follow
// insertion). A relay claims a key's rows only as the contiguous run that
// starts at the key's earliest pending row: a candidate is dropped when an
// earlier pending row of its key is not part of the same claim, because it is
// leased by another relay, backing off after a failed publish, or locked by a
// concurrent claim that SKIP LOCKED passed over. Rows the relay leased itself
// do not block it: they are ahead in its own pipeline, which publishes in
// claim order on a single channel. So at any time the unpublished rows of a
// key belong to at most one relay, which publishes them in id order. A poison
// row blocks only its own key, until it is dead; other keys flow. The partial
// index (key, id) WHERE state = 'pending' serves the per-key lookups. A key
// stays with the relay that holds its earliest row while its backlog lasts,
// so a few hot keys do not spread over relays; many keys do.
//
// Keys found blocked are skipped by the next claims for a moment (one poll
// interval, at most 1s), so that a blocked key with a large backlog cannot
// fill every batch while other keys wait.
//
// When a row fails or is released, later rows of its key that were claimed
// but not yet published must not overtake it: every failure or release
// changes an epoch, the claimer writes pending failures and releases before it
// claims, and the publisher releases the rest of any batch claimed under an
// older epoch. Messages already sent when a nack or return comes back (at most
// a window) can still reach the broker before the failed row's retry: the one
// case where per-key order is not kept, and it needs a broker refusal.
//
// Config.ID must be unique among running relays: two relays with one ID
// would take each other's leases for their own.
//
// # Waking up
//
// A trigger on outbox_event notifies jobsd_outbox after each inserting
// transaction commits (and a release notifies too); the relay LISTENs on a
// dedicated connection (not taken from the pool) and claims at once. It also
// polls every PollInterval (rows whose backoff or lease ran out, notifications
// missed while LISTEN was down) and claims again immediately after a full
// batch. PollOnly turns LISTEN off for PgBouncer in transaction mode.
//
// # Database settings
//
// Each relay transaction turns JIT off (a claim's estimate can cross
// jit_above_cost; compiling costs far more than running it) and
// synchronous_commit off: a lease or mark lost in a Postgres crash only makes
// a row be published again. The claim's statements are simple enough that
// generic plans are fine. Migration 003 sets fillfactor 50 on outbox_event so
// that leases are HOT updates.
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
