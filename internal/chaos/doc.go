// Package chaos is jobsd's fault matrix (`make chaos`): it starts its own
// Postgres (initdb into a temporary directory) and a three-node RabbitMQ
// cluster, runs jobsd serve and jobsd consume processes under load, injects
// one fault per scenario (kill -9, database restart, broker node kill, memory
// alarm, overload, ...), waits for the drain and measures from the database
// and the broker what was lost, duplicated or reordered.
//
// It runs the jobsd binary it is given, never the library in-process, so it
// measures what users run. It may import jobsd's outbox, relay (for defaults)
// and sql packages, pgx and amqp091-go; only cmd/chaos and its own tests
// import it.
package chaos
