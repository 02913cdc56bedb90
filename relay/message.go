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

// message turns a row into an AMQP message: persistent, message id = the
// row's message_id, type = topic, timestamp = created_at, the row's headers
// plus KeyHeader, body = payload. An error means the row can never be sent.
func message(rw *row) (amqp.Publishing, error) {
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
	if err := checkTable(headers); err != nil {
		return amqp.Publishing{}, fmt.Errorf("headers cannot be sent over AMQP: %v", err)
	}
	return amqp.Publishing{
		Headers:      headers,
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    rw.MessageID,
		Timestamp:    rw.CreatedAt,
		Type:         rw.Topic,
		AppId:        "jobsd",
		Body:         rw.Payload,
	}, nil
}

// headerValue maps a decoded JSON value to an AMQP field value.
func headerValue(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
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
