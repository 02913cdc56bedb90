package relay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

func TestClaimable(t *testing.T) {
	t.Parallel()
	cands := []keyRow{{"a", 1}, {"b", 2}, {"a", 3}, {"c", 5}, {"a", 6}, {"b", 7}}
	keyRows := []keyRow{
		{"a", 1}, {"a", 3}, {"a", 4}, {"a", 6}, // 4 is not a candidate: a stops before it
		{"b", 2}, {"b", 7}, // b is complete
		{"c", 0}, {"c", 5}, // c's earlier row 0 is held elsewhere: c is blocked
	}
	ids, blocked := claimable(cands, keyRows, nil)
	require.Equal(t, []int64{1, 2, 3, 7}, ids)
	require.ElementsMatch(t, []string{"a", "c"}, blocked)

	ids, blocked = claimable(cands[:2], []keyRow{{"a", 1}, {"b", 2}}, nil)
	require.Equal(t, []int64{1, 2}, ids)
	require.Empty(t, blocked)

	// A candidate at or before the last row held of its key (a held row
	// whose lease ran out) blocks the key; the empty key is never blocked.
	ids, blocked = claimable([]keyRow{{"a", 3}, {"", 4}, {"a", 5}, {"", 6}}, []keyRow{{"", 1}},
		map[string]int64{"a": 3})
	require.Equal(t, []int64{4, 6}, ids)
	require.Equal(t, []string{"a"}, blocked)
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"amqp://guest:secret@127.0.0.1:5672/":     "amqp://guest:xxxxx@127.0.0.1:5672/",
		"amqps://u:p%40ss@rabbit.example/vhost":   "amqps://u:xxxxx@rabbit.example/vhost",
		"amqp://guest@127.0.0.1:5672/":            "amqp://guest@127.0.0.1:5672/",
		"amqp://127.0.0.1":                        "amqp://127.0.0.1",
		"amqp://user:pa ss@host:bad port/%zz":     "(unparsable URL)",
		"amqp://guest:secret@127.0.0.1:5672/?x=y": "amqp://guest:xxxxx@127.0.0.1:5672/?x=y",
	} {
		require.Equal(t, want, RedactURL(in), in)
		require.NotContains(t, RedactURL(in), "secret")
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	url := "amqp://guest:secret@127.0.0.1:5672/"

	r, err := New(db.Pool, url, Config{})
	require.NoError(t, err)
	require.Equal(t, ExchangeDefault, r.cfg.Exchange)
	require.Equal(t, BatchSizeDefault, r.cfg.BatchSize)
	require.Equal(t, WindowDefault, r.cfg.Window)
	require.Equal(t, PollIntervalDefault, r.cfg.PollInterval)
	require.Equal(t, LeaseDefault, r.cfg.Lease)
	require.Equal(t, MaxAttemptsDefault, r.cfg.MaxAttempts)
	require.Equal(t, RetryBackoffDefault, r.cfg.RetryBackoff)
	require.Equal(t, RetentionDefault, r.cfg.Retention, "zero retention is the default, as every zero field")
	d := Config{}.WithDefaults()
	require.Equal(t, RetentionDefault, d.Retention)
	require.NotEmpty(t, d.ID)
	require.NotEmpty(t, r.ID())
	require.False(t, r.BrokerConnected())

	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{BatchSize: -1}, "batch size"},
		{Config{Window: -5}, "window"},
		{Config{PollInterval: time.Microsecond}, "poll interval"},
		{Config{Lease: time.Millisecond}, "lease"},
		{Config{MaxAttempts: -1}, "max attempts"},
		{Config{RetryBackoff: -time.Second}, "retry backoff"},
		{Config{Exchange: "bad name!"}, "exchange name"},
	} {
		_, err := New(db.Pool, url, tc.cfg)
		require.ErrorContains(t, err, tc.want)
	}
	_, err = New(nil, url, Config{})
	require.ErrorContains(t, err, "pool is nil")
	_, err = New(db.Pool, "http://guest:secret@host/", Config{})
	require.ErrorContains(t, err, "invalid AMQP URL")
	require.NotContains(t, err.Error(), "secret")
}

func TestRunTwiceFails(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{noQueue: true})
	r := h.start(h.broker.URL, h.config())
	require.Eventually(t, r.BrokerConnected, waitTimeout, time.Millisecond) // the first Run is under way
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.ErrorContains(t, r.Run(ctx), "already running")
}

func TestMessage(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rw := &row{
		ID: 7, MessageID: "5b0c3bd6-4a7c-4a57-9c51-9f1f5c2b6c0e", Topic: "user.signed_up", Key: "user-1",
		Payload:   []byte(`{"a":1}`),
		Headers:   []byte(`{"s":"x","i":42,"f":1.5,"b":true,"n":null,"arr":[1,"two"],"obj":{"k":"v"}}`),
		CreatedAt: created,
	}
	env := Config{}.WithDefaults().envelope()
	msg, err := message(rw, env, 131072)
	require.NoError(t, err)
	require.Equal(t, amqp.Publishing{
		Headers: amqp.Table{
			"s": "x", "i": int64(42), "f": 1.5, "b": true, "n": nil,
			"arr": []any{int64(1), "two"}, "obj": amqp.Table{"k": "v"},
			KeyHeader: "user-1",
		},
		ContentType: "application/json", DeliveryMode: amqp.Persistent,
		MessageId: rw.MessageID, Timestamp: created, Type: "user.signed_up", AppId: "jobsd",
		Body: []byte(`{"a":1}`),
	}, msg)

	rw.Headers = []byte(`{"` + strings.Repeat("h", 300) + `":"x"}`)
	_, err = message(rw, env, 131072)
	require.ErrorContains(t, err, "longer than 255 bytes")
	rw.Headers = []byte(`[1]`)
	_, err = message(rw, env, 131072)
	require.ErrorContains(t, err, "not a JSON object")
	rw.Headers = []byte(`{"CC":"a.b"}`)
	_, err = message(rw, env, 131072)
	require.ErrorContains(t, err, "array of routing keys")
	rw.Headers = []byte(`{"CC":["a.b"]}`)
	_, err = message(rw, env, 131072)
	require.NoError(t, err)

	// Properties that do not fit in a frame: the broker would close the
	// connection. The size computed matches what amqp091 writes closely
	// enough that a frame of exactly that size is accepted by the check.
	rw.Headers = []byte(`{"big":"` + strings.Repeat("x", 200_000) + `"}`)
	_, err = message(rw, env, 131072)
	require.ErrorContains(t, err, "frame size")
	msg, err = message(rw, env, 0)
	require.NoError(t, err)
	_, err = message(rw, env, propertiesSize(msg))
	require.NoError(t, err)
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	var last time.Duration
	for i := 0; i < 10; i++ {
		last = b.next()
		require.LessOrEqual(t, last, 1250*time.Millisecond)
		require.GreaterOrEqual(t, last, 75*time.Millisecond)
	}
	require.GreaterOrEqual(t, last, 750*time.Millisecond, "capped at max, with jitter")
	b.reset()
	require.LessOrEqual(t, b.next(), 125*time.Millisecond)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	h := setup(t, harnessOpts{})
	reg := prometheus.NewRegistry()
	cfg := h.config()
	cfg.Registerer = reg
	h.start(h.broker.URL, cfg)
	cfg.ID = "second" // a second relay on the same registry shares the collectors
	h.start(h.broker.URL, cfg)
	for i := 0; i < 5; i++ {
		write(t, h.db.Pool, outbox.Event{Topic: "test.metrics", Key: "k", Payload: seqPayload{Key: "k", Seq: i}})
	}
	h.got.waitDistinct(t, 5)
	value := func(name string) float64 {
		families, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range families {
			if f.GetName() == name {
				m := f.GetMetric()[0]
				switch f.GetType() {
				case dto.MetricType_COUNTER:
					return m.GetCounter().GetValue()
				case dto.MetricType_GAUGE:
					return m.GetGauge().GetValue()
				case dto.MetricType_HISTOGRAM:
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		return -1
	}
	require.Eventually(t, func() bool { return value("jobsd_outbox_published_total") == 5 }, waitTimeout, 5*time.Millisecond)
	require.GreaterOrEqual(t, value("jobsd_relay_publish_duration_seconds"), 5.0)
	require.Equal(t, 1.0, value("jobsd_relay_broker_connected"))
}
