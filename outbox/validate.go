package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The limits of an event. Postgres enforces the same ones (the function
// outbox_event_problem in sql/migrations/004_outbox_write.sql, used by the
// INSERT trigger outbox_event_sendable and by outbox_write), and
// TestGoAndSQLLimitsAgree checks that both sides agree at every boundary.
const (
	// MaxPayloadBytes bounds the payload as the relay publishes it: the bytes
	// the producer wrote (outbox_event.body). It stays far below RabbitMQ's
	// message size limit (16 MiB by default) so that an accepted event can
	// always be published.
	MaxPayloadBytes = 1 << 20

	// MaxContentTypeBytes bounds Event.ContentType (an AMQP short string).
	MaxContentTypeBytes = 255

	// MaxTopicBytes and MaxKeyBytes bound the topic and key (an AMQP short
	// string: the topic is the message type and routing key, the key a header).
	MaxTopicBytes = 255
	MaxKeyBytes   = 255

	// MaxHeaderNameBytes bounds a header name (an AMQP short string).
	MaxHeaderNameBytes = 255

	// MaxHeadersBytes bounds the headers as Postgres stores them: the text of
	// the jsonb object, {"name": "value", ...}, which is at least as long as
	// their AMQP encoding. Together with the relay's own properties, a
	// message's header frame then always fits in RabbitMQ's default frame
	// (frame_max 131072 bytes), which a frame cannot be split across.
	MaxHeadersBytes = 64 << 10

	// ReservedHeaderPrefix starts the names of headers the relay sets itself
	// (x-jobsd-key carries the event's key). See ReservedHeader.
	ReservedHeaderPrefix = "x-jobsd-"
)

// ReservedHeader reports whether an event may not use name as a header name:
// names starting with ReservedHeaderPrefix belong to the relay, and RabbitMQ
// routes on CC and BCC (and refuses them as plain strings). The comparison is
// case-sensitive, as AMQP header names are.
func ReservedHeader(name string) bool {
	return name == "CC" || name == "BCC" || strings.HasPrefix(name, ReservedHeaderPrefix)
}

// encode validates e and returns its payload and headers as JSON, the headers
// with the trace context of ctx (see traceHeaders).
func (e Event) encode(ctx context.Context) (payload, headers []byte, err error) {
	switch {
	case e.Topic == "":
		return nil, nil, invalid("topic is empty")
	case len(e.Topic) > MaxTopicBytes:
		return nil, nil, invalid("topic is longer than %d bytes", MaxTopicBytes)
	case len(e.Key) > MaxKeyBytes:
		return nil, nil, invalid("key is longer than %d bytes", MaxKeyBytes)
	}
	if err := checkText("topic", e.Topic); err != nil {
		return nil, nil, err
	}
	if err := checkText("key", e.Key); err != nil {
		return nil, nil, err
	}
	size, err := checkHeaders(e.Headers)
	if err != nil {
		return nil, nil, err
	}
	if len(e.ContentType) > MaxContentTypeBytes {
		return nil, nil, invalid("content type is longer than %d bytes", MaxContentTypeBytes)
	}
	if err := checkText("content type", e.ContentType); err != nil {
		return nil, nil, err
	}
	if JSONContentType(e.ContentType) {
		payload, err = encodePayload(e.Payload)
	} else {
		payload, err = opaquePayload(e.Payload, e.ContentType)
	}
	if err != nil {
		return nil, nil, err
	}
	h := traceHeaders(ctx, e.Headers, size)
	if h == nil {
		return payload, []byte("{}"), nil
	}
	headers, err = json.Marshal(h)
	return payload, headers, err
}

// checkHeaders validates headers and returns their size as JSON text, as
// Postgres' jsonb stores them ({"name": "value", ...}).
func checkHeaders(headers map[string]string) (int, error) {
	size := len("{}")
	for k, v := range headers {
		switch {
		case k == "":
			return 0, invalid("header name is empty")
		case len(k) > MaxHeaderNameBytes:
			return 0, invalid("header name %.40q... is longer than %d bytes", k, MaxHeaderNameBytes)
		case ReservedHeader(k):
			return 0, invalid("header name %q is reserved (CC, BCC and names starting with %q)", k, ReservedHeaderPrefix)
		}
		if err := checkText(fmt.Sprintf("header name %.40q", k), k); err != nil {
			return 0, err
		}
		if err := checkText(fmt.Sprintf("header %.40q", k), v); err != nil {
			return 0, err
		}
		size += escapedStringLen(k) + len(": ") + escapedStringLen(v)
	}
	if len(headers) > 1 {
		size += len(", ") * (len(headers) - 1)
	}
	if size > MaxHeadersBytes {
		return 0, invalid("headers are %d bytes as JSON, more than the %d allowed", size, MaxHeadersBytes)
	}
	return size, nil
}

func encodePayload(v any) (payload []byte, err error) {
	switch p := v.(type) {
	case json.RawMessage:
		payload = p
	case []byte:
		payload = p
	default:
		if payload, err = json.Marshal(p); err != nil {
			return nil, invalid("payload cannot be encoded as JSON: %v", err)
		}
	}
	if !json.Valid(payload) {
		return nil, invalid("payload is not valid JSON")
	}
	if !utf8.Valid(payload) { // json.Valid accepts invalid UTF-8 in strings; Postgres does not
		return nil, invalid("payload is not valid UTF-8")
	}
	if _, err := jsonbTextSize(payload); err != nil {
		return nil, invalid("payload is JSON that Postgres jsonb refuses: %v", err)
	}
	if len(payload) > MaxPayloadBytes {
		return nil, invalid("payload is %d bytes, more than the %d allowed", len(payload), MaxPayloadBytes)
	}
	return payload, nil
}

// opaquePayload checks the payload of a content type that is not JSON: bytes,
// sent as they are.
func opaquePayload(v any, contentType string) ([]byte, error) {
	var payload []byte
	switch p := v.(type) {
	case []byte:
		payload = p
	case json.RawMessage:
		payload = p
	default:
		return nil, invalid("payload of content type %q must be a []byte, got %T", contentType, v)
	}
	if payload == nil {
		payload = []byte{}
	}
	if len(payload) > MaxPayloadBytes {
		return nil, invalid("payload is %d bytes, more than the %d allowed", len(payload), MaxPayloadBytes)
	}
	return payload, nil
}

// JSONContentType reports whether a payload of this content type is JSON:
// empty (the default), application/json or any type/subtype+json, with or
// without parameters, in any case. The SQL function outbox_json_content_type
// (migration 008) decides the same way.
func JSONContentType(contentType string) bool {
	if contentType == "" {
		return true
	}
	media, _, _ := strings.Cut(contentType, ";")
	media = strings.ToLower(strings.Trim(media, " "))
	if media == "application/json" {
		return true
	}
	i := strings.IndexByte(media, '/')
	return i >= 0 && strings.HasSuffix(media[i+1:], "+json")
}

func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid("%s is not valid UTF-8", field)
	}
	if bytes.IndexByte([]byte(s), 0) >= 0 {
		return invalid("%s contains a NUL byte", field)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}
