// Package consumer is the analytics side of jobsd: it consumes the events the
// relay publishes to RabbitMQ and applies each one's effect exactly once,
// although RabbitMQ delivers at least once.
//
// A Consumer declares its topology (the relay's durable fanout exchange, a
// durable quorum queue bound to it, and a dead-letter exchange and queue),
// consumes with manual acks and a prefetch, and handles deliveries in batches:
// for each batch it runs one Postgres transaction that records every message
// id in consumer_inbox (primary key (queue, message_id)) and applies the
// Handler's effect to the messages whose ids were new. It acks only after that
// transaction committed, so a crash at any point leads to a redelivery that
// the inbox turns into a no-op.
//
// A malformed message (no message id, no type, body that is not JSON) is
// rejected without requeue and dead-lettered to "<queue>.dead"; a database
// error is never acked: the batch is nacked with requeue after a capped
// exponential backoff. Several Consumers on one queue, in one process or many,
// share the work (competing consumers).
//
// It may import pgx, amqp091-go, prometheus, the sql package and
// internal/database; not River, the relay or the CLI.
package consumer
