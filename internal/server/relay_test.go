package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/internal/server"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/relay"
	"github.com/jobsd/jobsd/signup"
)

// runServer runs srv until the test ends and checks that Run returned nil.
func runServer(t *testing.T, srv *server.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(time.Minute):
			t.Error("Run did not return after cancel")
		}
	})
}

func ready(t *testing.T, h http.Handler) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	return rec.Code, body
}

func TestReadyzReportsBroker(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	b := testbroker.New(t)
	p := b.NewProxy()
	srv, err := server.New(db.Pool, server.Config{
		HTTPAddr: "-",
		AMQPURL:  p.URL,
		Relay:    relay.Config{Exchange: b.Name("readyz"), PollInterval: 100 * time.Millisecond},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	runServer(t, srv)
	h := srv.Handler()
	waitReady := func(code int, broker string) {
		t.Helper()
		require.Eventually(t, func() bool {
			got, body := ready(t, h)
			return got == code && body["broker"] == broker && body["database"] == "ok"
		}, time.Minute, 5*time.Millisecond, "want /readyz %d with broker %s", code, broker)
	}
	waitReady(http.StatusOK, "connected")
	requireGauge(t, srv, "jobsd_relay_broker_connected", 1)
	requireGauge(t, srv, "jobsd_relay_broker_blocked", 0)

	// Broker down: POST /signup still works (the event waits in the outbox),
	// so the process stays ready; the body and the gauge say what is wrong.
	p.Refuse(true)
	p.Cut()
	waitReady(http.StatusOK, "disconnected")
	requireGauge(t, srv, "jobsd_relay_broker_connected", 0)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/signup", strings.NewReader(`{"email":"outage@example.com"}`)))
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())

	p.Refuse(false)
	waitReady(http.StatusOK, "connected")
}

// TestReadyzBrokerNeverReached: a relay pointed at a closed port leaves the
// process ready, with the broker reported disconnected.
func TestReadyzBrokerNeverReached(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := ln.Addr().String()
	require.NoError(t, ln.Close())
	srv, err := server.New(db.Pool, server.Config{
		HTTPAddr: "-",
		AMQPURL:  "amqp://guest:guest@" + closedAddr + "/",
		Relay:    relay.Config{Exchange: "unused"},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	runServer(t, srv)
	code, body := ready(t, srv.Handler())
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", body["database"], body)
	require.Equal(t, "disconnected", body["broker"], body)
}

// requireGauge requires the registry's gauge name (no labels) to be want.
func requireGauge(t *testing.T, srv *server.Server, name string, want float64) {
	t.Helper()
	families, err := srv.Registry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			require.Len(t, f.GetMetric(), 1, name)
			require.Equal(t, want, f.GetMetric()[0].GetGauge().GetValue(), name)
			return
		}
	}
	t.Fatalf("metric %s is not registered", name)
}

// TestRunStopsWhileBrokerStalls: the broker stops answering mid-stream (the
// TCP connection stays open, nothing is read or sent: what a blocked or hung
// broker looks like) while the relay publishes. Run still returns within
// ShutdownTimeout (plus generous slack for a loaded machine); if the relay
// did not stop in time, the error names it.
func TestRunStopsWhileBrokerStalls(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	b := testbroker.New(t)
	p := b.NewProxy()
	const shutdownTimeout = 2 * time.Second
	srv, err := server.New(db.Pool, server.Config{
		HTTPAddr:        "127.0.0.1:0",
		AMQPURL:         p.URL,
		ShutdownTimeout: shutdownTimeout,
		Relay:           relay.Config{Exchange: b.Name("stall"), PollInterval: 100 * time.Millisecond},
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	h := srv.Handler()
	require.Eventually(t, func() bool {
		_, body := ready(t, h)
		return body["broker"] == "connected"
	}, time.Minute, 5*time.Millisecond)

	p.Stall()
	for i := range 20 { // events the relay tries to publish into the stall
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/signup",
			strings.NewReader(fmt.Sprintf(`{"email":"stall%d@example.com"}`, i))))
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	}

	cancel()
	select {
	case err := <-done:
		t.Logf("Run returned %v", err)
		if err != nil {
			require.ErrorIs(t, err, server.ErrShutdownTimeout)
			require.ErrorContains(t, err, "relay")
		}
	case <-time.After(shutdownTimeout + deadline):
		t.Fatal("Run did not return within its shutdown timeout while the broker stalled")
	}
	p.Cut() // lets an abandoned relay end before the leak check
}

func TestReadyzWithoutRelay(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	srv, err := server.New(db.Pool, server.Config{HTTPAddr: "-", NoRelay: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.Nil(t, srv.Relay())
	code, body := ready(t, srv.Handler())
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "broker")
}

func TestNewRejectsBadRelayConfig(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	_, err := server.New(db.Pool, server.Config{AMQPURL: "amqp://guest:secret@127.0.0.1:5672/", Relay: relay.Config{Window: -1}})
	require.ErrorContains(t, err, "window")
	_, err = server.New(db.Pool, server.Config{AMQPURL: "nonsense://guest:secret@host/"})
	require.ErrorContains(t, err, "invalid AMQP URL")
	require.NotContains(t, err.Error(), "secret")
}

// TestSignupEventIsRelayed: a POST /signup commits a user, its jobs and an
// event; the server's relay publishes the event to the exchange.
func TestSignupEventIsRelayed(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	b := testbroker.New(t)
	exchange := b.Name("signup")
	ch := b.Channel()
	require.NoError(t, ch.ExchangeDeclare(exchange, amqp.ExchangeFanout, true, false, false, false, nil))
	_, err := ch.QueueDeclare(exchange, true, false, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(exchange, "", exchange, false, nil))
	deliveries, err := ch.Consume(exchange, "", true, false, false, false, nil)
	require.NoError(t, err)

	srv, err := server.New(db.Pool, server.Config{
		HTTPAddr: "-", AMQPURL: b.URL,
		Relay:  relay.Config{Exchange: exchange},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	runServer(t, srv)

	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/signup",
		strings.NewReader(`{"email":"ada@example.com","name":"Ada"}`)))
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	select {
	case d := <-deliveries:
		require.Equal(t, signup.Topic, d.Type)
		require.Contains(t, string(d.Body), "ada@example.com")
	case <-time.After(time.Minute):
		t.Fatal("the signup event did not arrive")
	}
}
