package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testbin"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

// TestServeEnvelopeFlagErrors: bad --relay-envelope, --relay-source and
// --app-id values (flags or JOBSD_* variables) exit 2 with one line, before
// anything connects (the database is down here).
func TestServeEnvelopeFlagErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bad envelope", nil, []string{"--relay-envelope", "cloudevent"}, `--relay-envelope must be none or cloudevents, got "cloudevent"`},
		{"bad envelope from env", []string{"JOBSD_RELAY_ENVELOPE=binary"}, nil, `got "binary"`},
		{"empty source", nil, []string{"--relay-envelope", "cloudevents", "--relay-source", ""}, "--relay-source must not be empty"},
		{"empty source from env", []string{"JOBSD_RELAY_ENVELOPE=cloudevents", "JOBSD_RELAY_SOURCE="}, nil, "--relay-source must not be empty"},
		{"source not a URI-reference", nil, []string{"--relay-envelope", "cloudevents", "--relay-source", "my service"}, "URI-reference"},
		{"empty app id", nil, []string{"--app-id", ""}, "--app-id must not be empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"serve", "--http-addr", "-"}, tt.args...)
			res := testbin.Run(t, append(dbEnv(downURL), tt.env...), args...)
			requireOneLineError(t, res, exitUsage, tt.want)
		})
	}
}

// TestServeCloudEvents: `jobsd serve --relay-envelope cloudevents` publishes
// a signup's event with the CloudEvents attributes and the app id set by
// the flags (the exchange and queue are the test's own).
func TestServeCloudEvents(t *testing.T) {
	t.Parallel()
	db, b := testdb.New(t), testbroker.New(t)
	exchange := b.Name("ce")
	ch := b.Channel()
	require.NoError(t, ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil))
	_, err := ch.QueueDeclare(exchange, true, false, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(exchange, "#", exchange, false, nil))

	env := []string{"DATABASE_URL=" + db.URL, "AMQP_URL=" + b.URL, "JOBSD_APP_ID=signup-api"}
	res := testbin.Run(t, env, "signup", "--email", "ce@example.com")
	require.Equal(t, 0, res.Code, res.Stderr)
	p := testbin.Start(t, env, "serve", "--http-addr", "-", "--exchange", exchange,
		"--relay-envelope", "cloudevents", "--relay-source", "https://example.com/signup")

	deliveries, err := ch.Consume(exchange, "", true, false, false, false, nil)
	require.NoError(t, err)
	var d amqp.Delivery
	select {
	case d = <-deliveries:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no event published; serve output:\n%s", p.Output())
	}
	require.NoError(t, p.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.Wait(time.Minute), p.Output())

	var messageID, key string
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"SELECT message_id::text, key FROM outbox_event WHERE topic = 'user.signed_up'").Scan(&messageID, &key))
	require.Equal(t, "signup-api", d.AppId)
	require.Equal(t, "application/json", d.ContentType)
	require.Equal(t, "1.0", d.Headers["cloudEvents_specversion"])
	require.Equal(t, messageID, d.Headers["cloudEvents_id"])
	require.Equal(t, "https://example.com/signup", d.Headers["cloudEvents_source"])
	require.Equal(t, "user.signed_up", d.Headers["cloudEvents_type"])
	require.Equal(t, key, d.Headers["cloudEvents_subject"])
	_, err = time.Parse(time.RFC3339Nano, d.Headers["cloudEvents_time"].(string))
	require.NoError(t, err)
}
