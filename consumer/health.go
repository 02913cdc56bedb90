package consumer

// Health is what a readiness probe needs to know about a Consumer.
type Health struct {
	// Broker is true while the consumer is connected to the broker with its
	// channels open and its AMQP consumers registered; false before Run
	// connected, while it reconnects and after it stopped.
	Broker bool

	// Database is false when the last batch transaction failed with a
	// database error (the consumer then holds its messages and retries);
	// true when it succeeded, failed for another reason (a handler error),
	// or no batch has needed the database yet.
	Database bool
}

// Ready reports whether the consumer can do its work now: connected to the
// broker, and the database answered its last transaction.
func (h Health) Ready() bool { return h.Broker && h.Database }

// Health returns the consumer's current state. It is safe to call at any
// time, also while Run runs.
func (c *Consumer) Health() Health {
	return Health{Broker: c.connected.Load(), Database: !c.databaseFailing.Load()}
}
