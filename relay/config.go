package relay

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of Config.
const (
	ExchangeDefault     = "analytics"
	ExchangeTypeDefault = ExchangeTopic
	BatchSizeDefault    = 1000
	WindowDefault       = 500
	PollIntervalDefault = time.Second
	LeaseDefault        = 30 * time.Second
	MaxAttemptsDefault  = 10
	RetentionDefault    = 24 * time.Hour
	RetryBackoffDefault = time.Second

	// RetryBackoffMax caps the per-row retry backoff.
	RetryBackoffMax = 5 * time.Minute

	// RetentionKeep, or any negative Retention, keeps published rows forever.
	RetentionKeep time.Duration = -1

	// RetentionDeleteAtOnce, or any Retention below a millisecond, deletes a
	// row as soon as the broker confirmed it: one write per event (the mark
	// is the delete) and no history for `jobsd outbox list`.
	RetentionDeleteAtOnce time.Duration = time.Nanosecond
)

// Config configures a Relay. Zero fields take the documented defaults (as in
// River: zero is the default, a negative Retention turns retention off); New
// never modifies the caller's copy.
type Config struct {
	// Exchange is the durable exchange the relay publishes to, each message
	// with its topic as routing key. It is declared (idempotently) at every
	// connection. Default ExchangeDefault.
	Exchange string

	// ExchangeType is the type Exchange is declared with: ExchangeTopic
	// (consumers' queues get the topics their binding keys match) or
	// ExchangeFanout (every queue gets every event). An exchange that
	// already exists with another type (every exchange an older jobsd
	// declared is fanout) is used as it is, and the relay logs once how to
	// change it. Default ExchangeTypeDefault.
	ExchangeType string

	// BatchSize is how many rows one claim takes. Default BatchSizeDefault.
	BatchSize int

	// Window is how many published messages may wait for their publisher
	// confirm at once (pipelined confirms). Default WindowDefault.
	Window int

	// PollInterval is how often the relay looks for pending rows when no
	// notification woke it: rows inserted while LISTEN was down, rows whose
	// retry backoff or lease ran out. Default PollIntervalDefault.
	PollInterval time.Duration

	// Lease is how long a claim holds its rows. A relay that dies keeps its
	// rows until the lease runs out, then any relay takes them. It must be far
	// longer than publishing one batch takes. Default LeaseDefault; at least 100ms.
	Lease time.Duration

	// MaxAttempts is how many failed publishes (nacked, returned, refused by
	// the broker) a row gets before it becomes dead. Default MaxAttemptsDefault.
	MaxAttempts int

	// RetryBackoff is the delay before a failed row is tried again; it doubles
	// with each attempt (with ±25% jitter), up to RetryBackoffMax.
	// Default RetryBackoffDefault.
	RetryBackoff time.Duration

	// Retention is how long published rows are kept before they are deleted
	// (in batches, off the publish path). Default RetentionDefault (24h).
	// Negative (RetentionKeep) keeps published rows forever;
	// RetentionDeleteAtOnce deletes each row as soon as the broker confirmed it.
	Retention time.Duration

	// Mandatory publishes with the mandatory flag: a message that no queue is
	// bound to comes back (basic.return) and the row is retried with backoff,
	// then dead, instead of being dropped by the broker. Default false: an
	// event nobody subscribed to is considered delivered.
	Mandatory bool

	// StrictOrder publishes a key's next row only once the broker confirmed
	// the previous one (at most one message in flight per key), so that per-key
	// order holds even when the broker nacks a message while it accepts later
	// ones of the key already sent: a quorum queue without a leader for a
	// moment during a node failure does that. It costs throughput for keys
	// with many rows waiting (one message per confirm round trip per key);
	// rows of different keys are still pipelined. The empty key is not
	// affected. Default false: a key's rows are pipelined within the window,
	// and such a nack lets the retried row arrive after them.
	StrictOrder bool

	// Envelope is how events are wrapped: EnvelopeNone (as they are) or
	// EnvelopeCloudEvents (CloudEvents 1.0 attributes as cloudEvents_*
	// headers, binary content mode; id = message id, type = topic, source =
	// Source, time = created_at, subject = key). Default EnvelopeNone.
	Envelope string

	// Source is the CloudEvents source attribute with EnvelopeCloudEvents: a
	// URI-reference naming the producer, e.g. https://example.com/signup or
	// /signup. Default SourceDefault.
	Source string

	// AppID is the AMQP app_id property of every message. Default AppIDDefault.
	AppID string

	// PollOnly disables LISTEN/NOTIFY (for PgBouncer in transaction mode): the
	// relay then only polls every PollInterval. Default false.
	PollOnly bool

	// ID identifies this relay in outbox_event.claimed_by. It must be unique
	// among running relays. Default hostname-pid-random.
	ID string

	// Logger receives the logs. Default slog.Default().
	Logger *slog.Logger

	// Registerer, when set, receives the relay's metrics:
	// jobsd_outbox_published_total, jobsd_relay_publish_failures_total,
	// jobsd_relay_publish_duration_seconds (claim to confirm, per message) and
	// jobsd_relay_broker_connected. Default nil: no metrics.
	Registerer prometheus.Registerer

	// TracerProvider, when tracing is on, gets a "publish <exchange>" span
	// (kind producer) per message, linked to the trace context the event
	// was written with; see the README's Tracing section. Default nil:
	// OpenTelemetry's global provider as it is when New runs. While that
	// (or the given provider) is a no-op, the relay does nothing per
	// message for tracing.
	TracerProvider trace.TracerProvider

	// noPrecheck lets messages the broker would refuse reach it (tests of
	// the relay's handling of refusals it does not foresee).
	noPrecheck bool
}

// WithDefaults returns c with every zero field set to its default, as New
// uses it.
func (c Config) WithDefaults() Config {
	if c.Exchange == "" {
		c.Exchange = ExchangeDefault
	}
	if c.ExchangeType == "" {
		c.ExchangeType = ExchangeTypeDefault
	}
	if c.BatchSize == 0 {
		c.BatchSize = BatchSizeDefault
	}
	if c.Window == 0 {
		c.Window = WindowDefault
	}
	if c.PollInterval == 0 {
		c.PollInterval = PollIntervalDefault
	}
	if c.Lease == 0 {
		c.Lease = LeaseDefault
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = MaxAttemptsDefault
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = RetryBackoffDefault
	}
	if c.Retention == 0 {
		c.Retention = RetentionDefault
	}
	if c.Envelope == "" {
		c.Envelope = EnvelopeNone
	}
	if c.Source == "" {
		c.Source = SourceDefault
	}
	if c.AppID == "" {
		c.AppID = AppIDDefault
	}
	if c.ID == "" {
		c.ID = defaultID()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports what New would refuse in c (after WithDefaults), for
// callers that check their configuration before they connect.
func (c Config) Validate() error {
	return c.WithDefaults().validate()
}

func (c Config) validate() error {
	switch {
	case len(c.Exchange) > 255:
		return fmt.Errorf("relay: exchange name is longer than 255 bytes")
	case c.ExchangeType != ExchangeTopic && c.ExchangeType != ExchangeFanout:
		return fmt.Errorf("relay: exchange type must be %q or %q, got %q", ExchangeTopic, ExchangeFanout, c.ExchangeType)
	case c.BatchSize < 1 || c.BatchSize > 100_000:
		return fmt.Errorf("relay: batch size must be between 1 and 100000, got %d", c.BatchSize)
	case c.Window < 1 || c.Window > 100_000:
		return fmt.Errorf("relay: window must be between 1 and 100000, got %d", c.Window)
	case c.PollInterval < time.Millisecond:
		return fmt.Errorf("relay: poll interval must be at least 1ms, got %v", c.PollInterval)
	case c.Lease < 100*time.Millisecond:
		return fmt.Errorf("relay: lease must be at least 100ms, got %v", c.Lease)
	case c.MaxAttempts < 1:
		return fmt.Errorf("relay: max attempts must be at least 1, got %d", c.MaxAttempts)
	case c.RetryBackoff < 0:
		return fmt.Errorf("relay: retry backoff must not be negative, got %v", c.RetryBackoff)
	case len(c.ID) > 200:
		return fmt.Errorf("relay: ID is longer than 200 bytes")
	}
	if err := c.validateEnvelope(); err != nil {
		return err
	}
	for _, r := range c.Exchange {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':') {
			return fmt.Errorf("relay: exchange name %q may contain only letters, digits, '-', '_', '.' and ':'", c.Exchange)
		}
	}
	return nil
}

func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "relay"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// deletesAtOnce reports whether confirmed rows are deleted instead of marked.
func (c Config) deletesAtOnce() bool { return c.Retention > 0 && c.Retention < time.Millisecond }

// keepsPublished reports whether published rows are kept forever.
func (c Config) keepsPublished() bool { return c.Retention < 0 }
