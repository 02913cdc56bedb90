// Package bench measures jobsd end to end against a real Postgres and
// RabbitMQ: the relay against a raw publisher, commit->consumer latency
// against the broker alone, and signups against raw River. Each measurement
// runs its baseline in the same process, so that results are read as ratios
// on a noisy machine. `jobsd bench` and the go test benchmarks of relay/ call
// it.
//
// Every function creates its own durable topic exchange and quorum queue
// named jobsd.bench.<random> and deletes them afterwards. Functions that take
// a pool write rows into it (outbox events, users, jobs): give them a scratch
// database, never a production one.
//
// It may import the relay, consumer, jobs, signup, outbox and sql packages,
// River, pgx and amqp091; no testing packages.
package bench
