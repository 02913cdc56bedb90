package consumer

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"
)

// Delivery is one well-formed message, as a Handler sees it. The consumer
// acks it; a Handler never does.
type Delivery struct {
	// MessageID is the AMQP message id, a UUID (the relay sets it to the
	// outbox row's message_id), in canonical form: lower case, hyphenated
	// (8-4-4-4-12). Never empty.
	MessageID string

	// Topic is the AMQP message type: the outbox event's topic, e.g.
	// "user.signed_up". Never empty.
	Topic string

	// Timestamp is the AMQP timestamp in UTC, or the zero time when the
	// publisher set none.
	Timestamp time.Time

	// Body is the message body, valid JSON.
	Body json.RawMessage

	// Headers are the AMQP headers (the outbox event's headers).
	Headers amqp.Table

	// Redelivered is true when the broker delivered this message before, to
	// this consumer or another one.
	Redelivered bool

	// span is the message's processing span (see Context); nil while
	// tracing is off.
	span trace.Span
}

// Day is the UTC day of the message's timestamp, or of now when it has none.
func (d Delivery) Day() time.Time {
	t := d.Timestamp
	if t.IsZero() {
		t = time.Now()
	}
	y, m, day := t.UTC().Date()
	return time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
}

// errMalformed is wrapped by parse's errors: the message can never be handled
// and is dead-lettered.
var errMalformed = errors.New("malformed message")

// parse turns an AMQP delivery into a Delivery, or says why it is malformed.
// Ids must be UUIDs (consumer_inbox.message_id is uuid) and topics text that
// Postgres accepts (UTF-8 without NUL), or they would fail in the database for
// ever.
func parse(d *amqp.Delivery) (Delivery, error) {
	switch {
	case d.MessageId == "":
		return Delivery{}, malformed("no message id")
	case !isUUID(d.MessageId):
		return Delivery{}, malformed("message id is not a UUID")
	case d.Type == "":
		return Delivery{}, malformed("no type (the event's topic)")
	case !pgText(d.Type):
		return Delivery{}, malformed("type is not UTF-8 text")
	case !json.Valid(d.Body):
		return Delivery{}, malformed("body is not valid JSON")
	}
	ts := d.Timestamp
	if !ts.IsZero() {
		ts = ts.UTC()
	}
	return Delivery{
		MessageID:   strings.ToLower(d.MessageId),
		Topic:       d.Type,
		Timestamp:   ts,
		Body:        json.RawMessage(d.Body),
		Headers:     d.Headers,
		Redelivered: d.Redelivered,
	}, nil
}

func malformed(reason string) error {
	return &malformedError{reason: reason}
}

type malformedError struct{ reason string }

func (e *malformedError) Error() string { return "malformed message: " + e.reason }
func (e *malformedError) Unwrap() error { return errMalformed }

func pgText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// isUUID reports whether s is a UUID in the hyphenated 8-4-4-4-12 form, in
// either case: the form the relay sends (outbox_event.message_id::text).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
