// Package consumer is the analytics side of jobsd: it consumes the events the
// relay publishes to RabbitMQ and applies each one's effect exactly once,
// although RabbitMQ delivers at least once.
//
// A Consumer declares its topology (the relay's durable exchange, a durable
// quorum queue bound to it with BindingKeys, and a dead-letter exchange and
// queue),
// consumes with manual acks and a prefetch, and handles deliveries in batches:
// for each batch it runs one Postgres transaction that records every message
// id in consumer_inbox (primary key (queue, message_id), message_id a uuid)
// and applies the Handler's effect to the messages whose ids were new. It acks
// only after that transaction committed, so a crash at any point leads to a
// redelivery that the inbox turns into a no-op.
//
// # Failures
//
// A malformed message (no message id, an id that is not a UUID, no type, a
// body that is not JSON) is rejected without requeue and dead-lettered to
// "<queue>.dead", as is a message whose Handler fails permanently (see
// Permanent) or fails MaxAttempts times in a row (5 by default) with any other
// error that is not a database error.
//
// While the database is unavailable (connection refused or lost, timeouts,
// shutdown, serialization failures: classified by error type and SQLSTATE),
// a worker holds its batch: the deliveries stay unacked and the transaction
// is retried in the process with capped exponential backoff (RetryBackoff
// doubling up to RetryBackoffMax), logged once per backoff step and then once
// a minute. The broker does not redeliver unacked messages while the
// consumer's channel lives, and the prefetch stops it from sending more, so an
// outage of any length costs no delivery. The consumer never nacks with
// requeue while it runs, because requeueing cycles messages through the queue:
// RabbitMQ 4 gives quorum queues a delivery limit of 20 by default, after
// which a returned message is dead-lettered (its effect would then be
// silently missing while the relay has it as published), and on 3.x, which
// has no default limit, a message that keeps failing would loop for ever. Only
// a consumer that stops while it holds messages returns them to the queue:
// one delivery each.
//
// The queue is declared with an explicit x-delivery-limit (DeliveryLimit, 20
// by default) so that RabbitMQ 3.x and 4.x behave alike; deliveries that count
// against it are those of a consumer that crashed, lost its connection, was
// stopped during an outage, or held messages past the broker's
// consumer_timeout (30 minutes by default: the broker then closes the channel
// and the messages return to the queue; a longer outage thus costs one
// delivery per consumer_timeout). A queue declared by an older jobsd, without
// the argument, cannot take it (PRECONDITION_FAILED): the consumer uses it as
// it is and logs the rabbitmqctl set_policy command that sets the limit.
//
// # Routing
//
// The relay publishes each event with its topic as routing key. On a topic
// exchange (ExchangeType's default) the queue gets the events whose topic
// matches one of BindingKeys ("user.*": one word after "user."; "order.#":
// any number; "#", the default: all), so consumer groups can split the
// topics; a fanout exchange gives every queue everything and ignores the
// keys. Bindings are only added: a key dropped from BindingKeys stays bound
// until it is removed on the broker. An exchange that exists with another
// type than ExchangeType (declared fanout by an older jobsd) cannot be
// redeclared; the consumer uses it as it is and logs it once: as a warning
// when that makes it ignore binding keys other than "#".
//
// # Inbox retention
//
// A goroutine of Run deletes the queue's consumer_inbox rows older than
// InboxRetention (7 days by default; negative keeps them), 1000 rows per
// statement, at start and then hourly. A message redelivered after its row
// was pruned would be applied again, so the retention must exceed any
// redelivery delay (a message applied but not acked, redelivered only when a
// consumer runs again).
//
// Several Consumers on one queue, in one process or many, share the work
// (competing consumers).
//
// It may import pgx, amqp091-go, prometheus, OpenTelemetry's API, the sql
// package, internal/database and internal/telemetry; not River, the relay or
// the CLI.
package consumer
