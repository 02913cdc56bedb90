package relay

import (
	"fmt"
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Envelopes of Config.Envelope.
const (
	// EnvelopeNone publishes the event as it is: the body, the AMQP
	// properties and headers the relay always sets. The default.
	EnvelopeNone = "none"

	// EnvelopeCloudEvents adds the CloudEvents 1.0 attributes in binary
	// content mode (the AMQP protocol binding): application properties
	// cloudEvents_specversion, cloudEvents_id, cloudEvents_source,
	// cloudEvents_type, cloudEvents_time and, for an event with a key,
	// cloudEvents_subject; datacontenttype is the AMQP content_type. The body
	// is unchanged: the event's data.
	EnvelopeCloudEvents = "cloudevents"
)

// Defaults of Config.Source and Config.AppID.
const (
	SourceDefault = "jobsd"
	AppIDDefault  = "jobsd"
)

// The CloudEvents attributes as AMQP headers (binary content mode; the
// prefix is cloudEvents_, the separator of the AMQP binding since 1.0.2).
const (
	CloudEventsSpecVersion = "1.0"

	ceSpecVersion = "cloudEvents_specversion"
	ceID          = "cloudEvents_id"
	ceSource      = "cloudEvents_source"
	ceType        = "cloudEvents_type"
	ceTime        = "cloudEvents_time"
	ceSubject     = "cloudEvents_subject"
)

// envelope is what every message gets from the relay's Config besides its
// row: the AMQP app_id and, with CloudEvents, the event source.
type envelope struct {
	appID       string
	cloudEvents bool
	source      string
}

func (c Config) envelope() envelope {
	return envelope{appID: c.AppID, cloudEvents: c.Envelope == EnvelopeCloudEvents, source: c.Source}
}

// wrap sets msg's CloudEvents headers from rw, replacing any header of the
// row with the same name: id, type, source and time are the relay's.
func (e envelope) wrap(msg *amqp.Publishing, rw *row) {
	if !e.cloudEvents {
		return
	}
	msg.Headers[ceSpecVersion] = CloudEventsSpecVersion
	msg.Headers[ceID] = rw.MessageID
	msg.Headers[ceSource] = e.source
	msg.Headers[ceType] = rw.Topic
	msg.Headers[ceTime] = rw.CreatedAt.UTC().Format(time.RFC3339Nano)
	if rw.Key != "" {
		msg.Headers[ceSubject] = rw.Key
	} else {
		delete(msg.Headers, ceSubject)
	}
}

// validateEnvelope checks Envelope, Source and AppID (with defaults set).
func (c Config) validateEnvelope() error {
	switch c.Envelope {
	case EnvelopeNone, EnvelopeCloudEvents:
	default:
		return fmt.Errorf("relay: envelope must be %q or %q, got %q", EnvelopeNone, EnvelopeCloudEvents, c.Envelope)
	}
	if len(c.AppID) > 255 {
		return fmt.Errorf("relay: app id is longer than 255 bytes")
	}
	if err := checkSource(c.Source); err != nil {
		return fmt.Errorf("relay: source %q: %v", c.Source, err)
	}
	return nil
}

// checkSource checks a CloudEvents source: a non-empty URI-reference
// (RFC 3986), such as https://example.com/signup, urn:example:signup or
// /signup.
func checkSource(s string) error {
	if s == "" {
		return fmt.Errorf("a CloudEvents source must not be empty")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '"' || r == '<' || r == '>' || r == '\\' || r == '^' || r == '`' ||
			r == '{' || r == '|' || r == '}' || r > 0x7e {
			return fmt.Errorf("a CloudEvents source is a URI-reference: %q is not allowed (percent-encode it)", r)
		}
	}
	if _, err := url.Parse(s); err != nil {
		return fmt.Errorf("a CloudEvents source is a URI-reference: %v", err)
	}
	return nil
}
