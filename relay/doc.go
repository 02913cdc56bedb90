// Package relay forwards outbox events to RabbitMQ: it claims pending
// outbox_event rows under a lease, publishes them with publisher confirms and
// marks them published only once the broker confirmed them.
//
// It may import pgx, amqp091-go and the sql package; not River or the CLI.
package relay
