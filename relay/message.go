package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	amqp "github.com/rabbitmq/amqp091-go"
)

// KeyHeader is the AMQP header that carries the event's ordering key.
const KeyHeader = "x-jobsd-key"

// message turns a row into an AMQP message (see encode) and checks that the
// broker will take it (see sendable). An error means the row can never be
// sent.
func message(rw *row, env envelope, frameMax int) (amqp.Publishing, error) {
	msg, err := encode(rw, env)
	if err != nil {
		return amqp.Publishing{}, err
	}
	return msg, sendable(msg, frameMax)
}

// encode turns a row into an AMQP message: persistent, message id = the
// row's message_id, type = topic, timestamp = created_at, content type and
// body = the row's, the row's headers plus KeyHeader, and env's app id and
// CloudEvents headers. An error means amqp091 could not write it.
func encode(rw *row, env envelope) (amqp.Publishing, error) {
	headers := amqp.Table{}
	if len(rw.Headers) > 0 && !bytes.Equal(rw.Headers, []byte("{}")) {
		dec := json.NewDecoder(bytes.NewReader(rw.Headers))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return amqp.Publishing{}, fmt.Errorf("headers are not a JSON object: %v", err)
		}
		for k, v := range m {
			headers[k] = headerValue(v)
		}
	}
	headers[KeyHeader] = rw.Key
	contentType := rw.ContentType
	if contentType == "" {
		contentType = "application/json"
	}
	msg := amqp.Publishing{
		Headers:      headers,
		ContentType:  contentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    rw.MessageID,
		Timestamp:    rw.CreatedAt,
		Type:         rw.Topic,
		AppId:        env.appID,
		Body:         rw.Payload,
	}
	env.wrap(&msg, rw)
	if err := checkTable(headers); err != nil {
		return amqp.Publishing{}, fmt.Errorf("headers cannot be sent over AMQP: %v", err)
	}
	if len(rw.Topic) > 255 {
		return amqp.Publishing{}, fmt.Errorf("topic is longer than 255 bytes: it cannot be a routing key")
	}
	if len(contentType) > 255 {
		return amqp.Publishing{}, fmt.Errorf("content type is longer than 255 bytes")
	}
	return msg, nil
}

// sendable checks what RabbitMQ refuses although amqp091 writes it:
// properties that do not fit in one frame of frameMax bytes (the broker
// closes the whole connection with FRAME_ERROR; frameMax 0 skips the check)
// and CC or BCC headers that are not arrays of strings (it closes the
// channel).
func sendable(msg amqp.Publishing, frameMax int) error {
	for _, name := range []string{"CC", "BCC"} {
		if v, ok := msg.Headers[name]; ok && !stringArray(v) {
			return fmt.Errorf("header %s must be an array of routing keys (strings); the broker refuses anything else", name)
		}
	}
	if n := propertiesSize(msg); frameMax > 0 && n > frameMax {
		return fmt.Errorf("message properties take %d bytes (mostly headers), more than the broker's frame size of %d bytes; "+
			"the broker would close the connection (FRAME_ERROR)", n, frameMax)
	}
	return nil
}

func stringArray(v any) bool {
	a, ok := v.([]any)
	if !ok {
		return false
	}
	for _, x := range a {
		if _, ok := x.(string); !ok {
			return false
		}
	}
	return true
}

// propertiesSize is the size of msg's content header frame as AMQP 0-9-1
// encodes it: frame envelope, class, weight, body size, property flags and
// the properties set by message.
func propertiesSize(msg amqp.Publishing) int {
	n := 8 + 12 + 2 // frame header and end; class, weight, body size; flags
	for _, s := range []string{msg.ContentType, msg.MessageId, msg.Type, msg.AppId} {
		n += 1 + len(s)
	}
	n += 1 + 8 // delivery mode, timestamp
	return n + tableSize(msg.Headers)
}

func tableSize(t amqp.Table) int {
	n := 4
	for k, v := range t {
		n += 1 + len(k) + 1 + fieldSize(v)
	}
	return n
}

func fieldSize(v any) int {
	switch v := v.(type) {
	case string:
		return 4 + len(v)
	case []byte:
		return 4 + len(v)
	case amqp.Table:
		return tableSize(v)
	case []any:
		n := 4
		for _, x := range v {
			n += 1 + fieldSize(x)
		}
		return n
	case bool, int8, uint8:
		return 1
	case int16, uint16:
		return 2
	case int32, uint32, float32:
		return 4
	case amqp.Decimal:
		return 5
	case nil:
		return 0
	default: // int, int64, float64, time.Time
		return 8
	}
}

// headerValue maps a decoded JSON value to an AMQP field value.
func headerValue(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		// A number beyond float64 (jsonb keeps any numeric) travels as its
		// text: an infinite double makes RabbitMQ close the connection.
		if f, err := v.Float64(); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return v.String()
	case map[string]any:
		t := amqp.Table{}
		for k, x := range v {
			t[k] = headerValue(x)
		}
		return t
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = headerValue(x)
		}
		return out
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return fmt.Sprint(v)
		}
	}
	return v
}

// checkTable rejects what amqp091 would fail on mid-frame: unsupported types
// and field names over 255 bytes.
func checkTable(t amqp.Table) error {
	if err := t.Validate(); err != nil {
		return err
	}
	var walk func(v any) error
	walk = func(v any) error {
		switch v := v.(type) {
		case amqp.Table:
			for k, x := range v {
				if len(k) > 255 {
					return fmt.Errorf("header name %.40q... is longer than 255 bytes", k)
				}
				if err := walk(x); err != nil {
					return err
				}
			}
		case []any:
			for _, x := range v {
				if err := walk(x); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(t)
}
