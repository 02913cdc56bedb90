// Package relay forwards outbox events to RabbitMQ: it claims pending
// outbox_event rows under a lease, publishes them with pipelined publisher
// confirms and marks them published only once the broker confirmed them.
//
// It may import pgx, amqp091-go, the Prometheus client, OpenTelemetry's API,
// the sql package and internal/telemetry; not River, the CLI or other jobsd
// packages.
//
// # Claim, lease, publish, mark
//
// A claim is one short transaction of two round trips (sql/app/relay_claim_*):
// the first locks up to BatchSize pending, available, unleased rows in id order
// with FOR UPDATE SKIP LOCKED and returns, per candidate key, the key's pending
// rows that could stand in its way (see per-key order below); the second sets
// claimed_by and claimed_until on the rows that may be claimed and commits. No
// transaction stays open while the relay talks to the broker. Every statement
// walks an index in order and stops after a batch (bitmap and sequential
// scans are turned off in the relay's transactions), so a claim costs the
// same with 30k or 1M pending rows; docs/relay-queries.md has the plans.
// The relay publishes the rows on one confirm-mode channel with up to about
// Window messages awaiting their confirm, and claims the next batch while the
// current one is in flight. Confirmed (acked) rows are marked published in
// bulk, one UPDATE ... WHERE id = ANY($1) per round (with
// RetentionDeleteAtOnce they are deleted instead).
//
// claimed_by holds the relay's ID and a random token of the run
// ("<id>/<token>"): a relay restarted with the same ID does not mistake the
// earlier run's leases for its own. Since IDs are unique among running
// relays, a new run takes those leases back at start, so that a crashed
// relay's rows need not wait for their lease to end.
//
// A row that is nacked, returned (with Mandatory) or makes the broker close
// the channel or the connection over its content counts an attempt, records
// last_error and is retried after an exponential backoff; after MaxAttempts
// it becomes dead. A row that can never be sent goes dead at its first
// attempt with the reason: headers that are not a JSON object or not
// encodable in AMQP, a CC or BCC header that is not an array of strings,
// properties larger than the connection's frame size (RabbitMQ would close
// the whole connection with FRAME_ERROR). A row published without a confirm
// because the connection or channel went away is released (lease cleared, no
// attempt counted) and published again: delivery is at least once, and
// consumers dedupe on the message id (outbox_event.message_id).
//
// Confirms come from amqp091's DeferredConfirmation, which tracks each tag on
// its own: NotifyPublish loses a nack that arrives before the ack of an
// earlier tag when a multiple ack follows. A broker that does not confirm
// within half the lease is taken as broken and the relay reconnects, except
// while it blocks publishing (below).
//
// The broker closes a channel over one bad message, and a connection over a
// frame it cannot take. The close does not say which unconfirmed message it
// was, so the relay opens a new channel (or connection) and publishes those
// messages again one at a time, each waiting for its confirm: the one that
// closes it again is the culprit and fails; the ones before it go through
// and the ones after it are released. Other keys never wait for it beyond
// that, and reconnections back off until the broker confirms a message.
//
// A relay that dies (SIGKILL) keeps its rows until their lease ends (or a
// relay with its ID starts); then any relay claims them. A relay publishes a
// batch only while at least min(Lease/2, 5s) of its lease remains, so that two
// relays do not publish the same rows at once unless one of them stalls for
// that long. A crash republishes what the dead relay had published but not
// marked: the publisher pauses while BatchSize confirmed rows wait to be
// marked, so that is at most BatchSize + Window messages.
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
// and the SQL function outbox_write take a per-key advisory lock until
// commit, so within one key ids follow commit order (rows inserted by a plain
// INSERT take no lock: for them ids follow insertion). A relay claims a key's
// rows only as a contiguous run: after the last row of the key it still holds
// in its pipeline, or, when it holds none, from the key's earliest pending
// row. A candidate is dropped when a row of its key before it in that range
// is not part of the same claim: leased by another relay or by an earlier
// run, backing off after a failed publish, or locked by a concurrent claim
// that SKIP LOCKED passed over. Each key is one index range scan on
// (key, id) WHERE state = 'pending'. So at any time the unpublished rows of
// a key belong to at most one relay, which publishes them in id order. A
// poison row blocks only its own key, until it is dead; other keys flow. The
// empty key promises no order and is never blocked.
//
// What the run holds is memory; the table decides. The run forgets a row
// only once the row's outcome is written (marked, failed or released); a
// write that fails is retried, and the claimer claims nothing until it went
// through. A key whose row failed or was released is claimed again from its
// earliest pending row, where the run's own unwritten rows block it. A claim
// whose COMMIT outcome is unknown is given back by id before the next claim;
// until then its rows only block their keys. A failed or released row must
// also not be overtaken by later rows of its key already claimed: the
// publisher releases, instead of publishing, a row of a batch claimed before
// a row of the same key left the pipeline; rows of other keys in that batch
// are published. Messages already sent when a nack or return comes back (at
// most a window) can still reach the broker before the failed row's retry:
// the one case where per-key order is not kept, and it needs a broker refusal
// (a quorum queue without a leader during a node failure nacks). With
// Config.StrictOrder a key has at most one message in flight, and this case
// is gone too: a key's next row waits for the previous one's confirm.
//
// Keys found blocked are skipped by the next claims for a moment (one poll
// interval, at most 1s), so that a blocked key with a large backlog cannot
// fill every batch while other keys wait; a claim that only found blocked
// keys does not claim again at once.
//
// Config.ID must be unique among running relays: two relays with one ID
// would take each other's leases at start.
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
// jitter). Given several AMQP URLs (a cluster's nodes, separated by commas),
// each connection tries them in order from the one that worked last, so the
// relay moves to another node when its node goes away. Meanwhile rows stay pending, nothing is claimed, and
// BrokerConnected reports false. A lost connection releases the unconfirmed
// rows; they drain when the broker is back.
//
// # Exchange and routing
//
// Messages are published with the topic as routing key to a durable
// exchange, declared at every connection with ExchangeType: topic by default
// (each consumer group binds its queue with the keys it wants, "user.*" or
// "order.#"), or fanout (every queue gets every event). RabbitMQ cannot change
// an existing exchange's type: declaring it with another one fails with
// PRECONDITION_FAILED and closes the channel. Exchanges declared by older
// versions are all fanout, so the relay then declares the exchange as the
// other type (a no-op when it is that type), or else passively, on a new
// channel, and uses it as it is; later connections declare the type found.
// It logs one warning per Relay saying what that means and how to get the
// configured type (a new exchange, or deleting the old one while nothing uses
// it). Publishing goes on: no reconnection, no retry loop.
//
// A broker under a resource alarm (memory, disk) sends connection.blocked
// and stops reading. The relay then claims nothing, its publisher waits, the
// confirm timeout does not apply (the broker holds what it has; reconnecting
// would publish it twice), and BrokerBlocked reports true until
// connection.unblocked. Every close of a connection has a deadline, and a
// publisher stuck in a write is freed by closing the connection, so Run
// returns within a few seconds of its context ending even then.
//
// # Retention
//
// A separate goroutine deletes published rows older than Retention (24h by
// default), at most 1000 per statement, never in the publish path.
// RetentionKeep keeps them; RetentionDeleteAtOnce deletes each row when its
// confirm comes, instead of marking it.
package relay
