package relay

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/outbox"
)

// exactJSON is JSON that jsonb would rewrite: key order, whitespace, escapes,
// a duplicate key, a number beyond int64 with trailing zeros.
const exactJSON = "{\"z\": 1,\n  \"a\" :[1 ,2],\t\"big\": 12345678901234567890.000, " +
	`"u": "\u00e9\ud83d\ude00\/", "e": 1E+3, "dup": 1, "dup": 2}`

// byMessageID returns the deliveries keyed by message id.
func byMessageID(r *received) map[string]amqp.Delivery {
	out := map[string]amqp.Delivery{}
	for _, d := range r.snapshot() {
		out[d.MessageId] = d
	}
	return out
}

// messageIDs returns the message ids of rows ids, in order.
func messageIDs(t *testing.T, h *harness, ids ...int64) []string {
	t.Helper()
	out := make([]string, len(ids))
	for i, id := range ids {
		require.NoError(t, h.db.Pool.QueryRow(context.Background(),
			"SELECT message_id::text FROM outbox_event WHERE id = $1", id).Scan(&out[i]))
	}
	return out
}

// TestRelayPublishesExactBytes: what a producer wrote reaches a RabbitMQ
// queue byte for byte, JSON (through outbox.Write and the SQL function) and
// protobuf (with its content type); a row of payload only (written before
// migration 008, or by a plain INSERT) is published as jsonb's text, as before.
func TestRelayPublishesExactBytes(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	ctx := context.Background()
	protobuf := []byte{0x08, 0x2a, 0x12, 0x02, 0x00, 0xff}
	ids := write(t, h.db.Pool,
		outbox.Event{Topic: "user.signed_up", Key: "42", Payload: []byte(exactJSON)},
		outbox.Event{Topic: "user.signed_up", Key: "42", Payload: protobuf, ContentType: "application/x-protobuf"},
	)
	var id int64
	require.NoError(t, h.db.Pool.QueryRow(ctx, "SELECT outbox_write('user.signed_up', '43', '"+exactJSON+"')").Scan(&id))
	ids = append(ids, id)
	require.NoError(t, h.db.Pool.QueryRow(ctx,
		`INSERT INTO outbox_event (topic, key, payload) VALUES ('user.signed_up', '44', '{"b":1,  "a":2}') RETURNING id`).Scan(&id))
	ids = append(ids, id)

	h.start(h.broker.URL, h.config())
	h.got.waitDistinct(t, len(ids))
	got := byMessageID(h.got)
	mids := messageIDs(t, h, ids...)
	for i, want := range []struct {
		body        []byte
		contentType string
	}{
		{[]byte(exactJSON), "application/json"},
		{protobuf, "application/x-protobuf"},
		{[]byte(exactJSON), "application/json"},
		{[]byte(`{"a": 2, "b": 1}`), "application/json"},
	} {
		d, ok := got[mids[i]]
		require.True(t, ok, "row %d not delivered", ids[i])
		require.Equal(t, want.body, d.Body, "row %d", ids[i])
		require.Equal(t, want.contentType, d.ContentType, "row %d", ids[i])
		require.Equal(t, AppIDDefault, d.AppId)
		require.NotContains(t, d.Headers, ceID, "no CloudEvents headers unless configured")
	}
}

// validateCloudEvent checks a delivery against the CloudEvents 1.0 AMQP
// binding in binary content mode: the required attributes id, source,
// specversion and type are there and non-empty, specversion is 1.0, source
// is a URI-reference, time (when present) is RFC 3339, and datacontenttype is
// the AMQP content-type.
func validateCloudEvent(d amqp.Delivery) error {
	attr := func(name string) (string, error) {
		v, ok := d.Headers["cloudEvents_"+name]
		if !ok {
			return "", fmt.Errorf("required attribute %s is missing", name)
		}
		s, ok := v.(string)
		if !ok || s == "" {
			return "", fmt.Errorf("attribute %s is %#v, not a non-empty string", name, v)
		}
		return s, nil
	}
	for _, name := range []string{"id", "type"} {
		if _, err := attr(name); err != nil {
			return err
		}
	}
	if v, err := attr("specversion"); err != nil {
		return err
	} else if v != "1.0" {
		return fmt.Errorf("specversion is %q, not 1.0", v)
	}
	source, err := attr("source")
	if err != nil {
		return err
	}
	if _, err := url.Parse(source); err != nil || strings.ContainsAny(source, " \t\n") {
		return fmt.Errorf("source %q is not a URI-reference: %v", source, err)
	}
	if _, ok := d.Headers["cloudEvents_time"]; ok {
		v, err := attr("time")
		if err != nil {
			return err
		}
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return fmt.Errorf("time %q is not RFC 3339: %v", v, err)
		}
	}
	if _, ok := d.Headers["cloudEvents_datacontenttype"]; ok {
		return fmt.Errorf("datacontenttype goes in the AMQP content-type property in binary mode, not in a header")
	}
	for name := range d.Headers {
		if attr, ok := strings.CutPrefix(name, "cloudEvents_"); ok {
			for _, r := range attr {
				if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
					return fmt.Errorf("attribute name %q is not lower-case letters and digits", attr)
				}
			}
		}
	}
	return nil
}

// TestRelayCloudEvents: with Envelope cloudevents, every message a real
// broker delivers is a valid CloudEvent whose attributes come from its row:
// id = message id, type = topic, source = Config.Source, time = created_at,
// subject = key, datacontenttype = content type; AppID is the app_id.
func TestRelayCloudEvents(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	ctx := context.Background()
	ids := write(t, h.db.Pool,
		outbox.Event{Topic: "user.signed_up", Key: "42", Payload: []byte(exactJSON),
			Headers: map[string]string{"cloudEvents_id": "forged", "cloudEvents_traceparent": "kept"}},
		outbox.Event{Topic: "order.paid", Payload: []byte{1, 2, 3}, ContentType: "application/x-protobuf"},
	)
	cfg := h.config()
	cfg.Envelope, cfg.Source, cfg.AppID = EnvelopeCloudEvents, "https://example.com/signup", "signup-service"
	h.start(h.broker.URL, cfg)
	h.got.waitDistinct(t, len(ids))
	got := byMessageID(h.got)
	for i, mid := range messageIDs(t, h, ids...) {
		d := got[mid]
		require.NoError(t, validateCloudEvent(d), "row %d: %v", ids[i], d.Headers)
		var created time.Time
		require.NoError(t, h.db.Pool.QueryRow(ctx, "SELECT created_at FROM outbox_event WHERE id = $1", ids[i]).Scan(&created))
		at, err := time.Parse(time.RFC3339Nano, d.Headers["cloudEvents_time"].(string))
		require.NoError(t, err)
		require.True(t, created.Equal(at), "time %v, created_at %v", at, created)
		require.Equal(t, mid, d.Headers["cloudEvents_id"])
		require.Equal(t, d.Type, d.Headers["cloudEvents_type"])
		require.Equal(t, "https://example.com/signup", d.Headers["cloudEvents_source"])
		require.Equal(t, "signup-service", d.AppId)
	}
	d := got[messageIDs(t, h, ids[0])[0]]
	require.Equal(t, "user.signed_up", d.Headers["cloudEvents_type"])
	require.Equal(t, "42", d.Headers["cloudEvents_subject"])
	require.Equal(t, "kept", d.Headers["cloudEvents_traceparent"], "the row's other headers pass")
	require.Equal(t, "application/json", d.ContentType)
	require.Equal(t, exactJSON, string(d.Body), "binary mode: the body is the data, unchanged")
	d = got[messageIDs(t, h, ids[1])[0]]
	require.NotContains(t, d.Headers, "cloudEvents_subject", "no key, no subject")
	require.Equal(t, "application/x-protobuf", d.ContentType)
	require.Equal(t, []byte{1, 2, 3}, d.Body)

	// The validator refuses what the spec refuses.
	bad := amqp.Delivery{Headers: amqp.Table{"cloudEvents_id": "1", "cloudEvents_type": "t", "cloudEvents_specversion": "1.0"}}
	require.ErrorContains(t, validateCloudEvent(bad), "source is missing")
	bad.Headers["cloudEvents_source"] = ""
	require.ErrorContains(t, validateCloudEvent(bad), "not a non-empty string")
	bad.Headers["cloudEvents_source"], bad.Headers["cloudEvents_specversion"] = "/s", "0.3"
	require.ErrorContains(t, validateCloudEvent(bad), "not 1.0")
}

// TestMessageCloudEventsFrameSize: the CloudEvents headers count in the
// frame size that sendable checks, so a row that fits without them but not
// with them is still found unsendable.
func TestMessageCloudEventsFrameSize(t *testing.T) {
	t.Parallel()
	rw := &row{ID: 1, MessageID: "5b0c3bd6-4a7c-4a57-9c51-9f1f5c2b6c0e", Topic: "user.signed_up", Key: "42",
		Payload: []byte(`{}`), Headers: []byte(`{"big":"` + strings.Repeat("x", 5000) + `"}`), CreatedAt: time.Unix(0, 0)}
	plain := Config{}.WithDefaults()
	ce := plain
	ce.Envelope, ce.Source = EnvelopeCloudEvents, "https://example.com/"+strings.Repeat("s", 200)
	msg, err := message(rw, plain.envelope(), 0)
	require.NoError(t, err)
	fits := propertiesSize(msg)
	_, err = message(rw, plain.envelope(), fits)
	require.NoError(t, err)
	_, err = message(rw, ce.envelope(), fits)
	require.ErrorContains(t, err, "frame size")
	msg, err = message(rw, ce.envelope(), 0)
	require.NoError(t, err)
	require.Greater(t, propertiesSize(msg), fits+200)
	require.Equal(t, ce.Source, msg.Headers[ceSource])
}

func TestConfigEnvelope(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Envelope: "cloudevent"}, `envelope must be "none" or "cloudevents", got "cloudevent"`},
		{Config{Envelope: EnvelopeCloudEvents, Source: "has space"}, "URI-reference"},
		{Config{Envelope: EnvelopeCloudEvents, Source: "http://[::1"}, "URI-reference"},
		{Config{Envelope: EnvelopeCloudEvents, Source: "é"}, "URI-reference"},
		{Config{AppID: strings.Repeat("a", 256)}, "app id is longer than 255 bytes"},
	} {
		require.ErrorContains(t, tt.cfg.Validate(), tt.want)
	}
	for _, ok := range []Config{
		{}, {Envelope: EnvelopeNone}, {Envelope: EnvelopeCloudEvents},
		{Envelope: EnvelopeCloudEvents, Source: "urn:example:signup"}, {Envelope: EnvelopeCloudEvents, Source: "/signup"},
		{Envelope: EnvelopeCloudEvents, Source: "https://example.com/a%20b?x=1#f"}, {AppID: "billing"},
	} {
		require.NoError(t, ok.Validate(), "%+v", ok)
	}
	cfg := Config{}.WithDefaults()
	require.Equal(t, EnvelopeNone, cfg.Envelope)
	require.Equal(t, SourceDefault, cfg.Source)
	require.Equal(t, AppIDDefault, cfg.AppID)
}
