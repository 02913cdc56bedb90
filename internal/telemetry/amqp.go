package telemetry

import (
	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQPCarrier reads and writes trace context (traceparent, tracestate,
// baggage) in the headers of an AMQP message, as a propagation.TextMapCarrier.
// Only string values are read.
type AMQPCarrier amqp.Table

// Get returns the header key if it is a string.
func (c AMQPCarrier) Get(key string) string {
	s, _ := c[key].(string)
	return s
}

// Set sets the header key.
func (c AMQPCarrier) Set(key, value string) { c[key] = value }

// Keys lists the header names.
func (c AMQPCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
