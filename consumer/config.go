package consumer

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of Config.
const (
	// ExchangeDefault is the relay's exchange.
	ExchangeDefault = "analytics"

	// ExchangeTypeDefault is the relay's default exchange type.
	ExchangeTypeDefault = ExchangeTopic

	// BindingKeyAll is the default binding key: every topic.
	BindingKeyAll = "#"

	// PrefetchDefault is how many unacked messages the broker may push to each
	// of the consumer's channels. See BenchmarkConsumer for the measurement
	// behind it: lower values starve the batches, higher ones gain nothing and
	// hold more messages hostage when a consumer dies.
	PrefetchDefault = 200

	// BatchSizeDefault is the largest number of deliveries handled in one
	// database transaction.
	BatchSizeDefault = 100

	// ConcurrencyDefault is the number of channels, each with its own AMQP
	// consumer and worker, that one Consumer runs.
	ConcurrencyDefault = 2

	// RetryBackoffDefault and RetryBackoffMaxDefault bound the wait before a
	// failed batch is retried and before a lost broker connection is redialled.
	RetryBackoffDefault    = 500 * time.Millisecond
	RetryBackoffMaxDefault = 30 * time.Second

	// MaxAttemptsDefault is how many times a message whose Handler keeps
	// failing (not a database error) is tried before it is dead-lettered.
	MaxAttemptsDefault = 5

	// DeliveryLimitDefault is the x-delivery-limit declared on the queue:
	// RabbitMQ 4's default for quorum queues, declared explicitly so that
	// RabbitMQ 3.x (no default: unlimited) behaves the same.
	DeliveryLimitDefault = 20

	// InboxRetentionDefault is how long consumer_inbox rows are kept: far
	// longer than any redelivery window (see Config.InboxRetention).
	InboxRetentionDefault = 7 * 24 * time.Hour

	// TxTimeoutDefault bounds one batch's database transaction.
	TxTimeoutDefault = 30 * time.Second
)

// Config configures a Consumer. Zero fields take the documented defaults; New
// works on a copy and never changes the caller's Config.
type Config struct {
	// Queue is the consumer group: the durable quorum queue this consumer
	// declares, binds to Exchange and consumes. Consumers with the same Queue
	// share its messages; consumers with different queues each get every
	// message. "<Queue>.dlx" (a fanout exchange) and "<Queue>.dead" (a quorum
	// queue) receive the rejected messages. Required.
	Queue string

	// Exchange is the durable exchange the relay publishes to. Default
	// ExchangeDefault.
	Exchange string

	// ExchangeType is the type Exchange is declared with, as the relay does:
	// ExchangeTopic or ExchangeFanout. An exchange that already exists with
	// another type (every exchange an older jobsd declared is fanout) is used
	// as it is, and the consumer logs it once. Default ExchangeTypeDefault.
	ExchangeType string

	// BindingKeys are the keys Queue is bound to Exchange with: on a topic
	// exchange the queue gets the events whose topic matches one of them
	// ("user.*" matches one word after "user.", "order.#" any number,
	// "#" everything). A fanout exchange ignores them. Bindings are only
	// added, never removed: a key dropped later stays bound until removed on
	// the broker. Default [BindingKeyAll].
	BindingKeys []string

	// Prefetch is the AMQP QoS prefetch count of each channel: how many
	// messages the broker may send before they are acked. With Concurrency
	// channels, up to Prefetch*Concurrency messages are in flight. Default
	// PrefetchDefault.
	Prefetch int

	// BatchSize is the largest number of deliveries handled in one database
	// transaction and acked with one multiple-ack. A batch never waits to fill
	// up: it takes what the broker already sent, so latency at low load stays
	// one transaction. Must not exceed Prefetch. Default BatchSizeDefault;
	// 1 handles each message in its own transaction.
	BatchSize int

	// Concurrency is the number of channels this Consumer opens, each with its
	// own AMQP consumer and a worker that handles its deliveries in order, so
	// that one batch's transaction overlaps the next batch's delivery. Default
	// ConcurrencyDefault.
	Concurrency int

	// RetryBackoff is the first wait after a failed batch (database down,
	// handler error) before its transaction is retried in the process, and
	// before redialling a lost broker connection. It doubles on each
	// consecutive failure up to RetryBackoffMax, with up to 20% jitter.
	// Default RetryBackoffDefault.
	RetryBackoff time.Duration

	// RetryBackoffMax caps RetryBackoff's doubling. Default RetryBackoffMaxDefault.
	RetryBackoffMax time.Duration

	// MaxAttempts is how many times the consumer tries, in the process and
	// with RetryBackoff between tries, a message whose Handler fails with an
	// error that is neither permanent nor a database error, before it
	// dead-letters the message to "<Queue>.dead" instead of looping on it.
	// Database errors (connection lost or refused, timeouts, serialization
	// failures, ...) never count: the consumer holds the messages and
	// retries until the database is back. Default MaxAttemptsDefault; 1
	// dead-letters at the first failure.
	MaxAttempts int

	// DeliveryLimit is the quorum queue's x-delivery-limit: how many times
	// the broker delivers a message that is returned to the queue (a consumer
	// that crashed or lost its connection holding it) before it dead-letters
	// it. RabbitMQ 4 defaults to 20 for quorum queues, 3.x to unlimited; jobsd
	// declares it so both behave alike. The consumer itself never requeues
	// except when it stops while the database is down (one delivery). A
	// queue that exists without the argument (declared by an older jobsd)
	// keeps working: the consumer logs how to set it with a policy. Default
	// DeliveryLimitDefault; -1 declares no limit argument (the broker's
	// default applies).
	DeliveryLimit int

	// InboxRetention is how long this queue's consumer_inbox rows are kept.
	// A background goroutine deletes older rows, 1000 per statement, at start
	// and then every hour (or every InboxRetention, if shorter). A message
	// redelivered after its row was pruned would be applied twice, so it must
	// exceed the longest time a message can be redelivered after it was
	// applied: a consumer that committed but died before its ack, while no
	// other consumer ran for days; a relay that republishes after a crash.
	// Default InboxRetentionDefault (7 days); -1 (any negative value) keeps
	// the rows for ever.
	InboxRetention time.Duration

	// TxTimeout bounds one batch's database transaction, including the
	// Handler. The transaction is not cancelled by Run's context: a stop lets
	// in-flight batches finish within TxTimeout. Default TxTimeoutDefault.
	TxTimeout time.Duration

	// Handler applies the effect of new messages inside the batch's
	// transaction. Default AnalyticsHandler.
	Handler Handler

	// Logger receives the logs. Default slog.Default().
	Logger *slog.Logger

	// Registerer, if set, gets the counter
	// jobsd_consumer_messages_total{queue, result}, result being processed,
	// duplicate, rejected or requeued, the counter
	// jobsd_consumer_retries_total{queue, reason}, reason being database or
	// handler (every label value exists at 0 from New on), and the
	// histograms jobsd_consumer_batch_duration_seconds{queue} and
	// jobsd_consumer_lag_seconds{queue}. Several Consumers may share one
	// Registerer. Default nil: no metrics (Stats still counts).
	Registerer prometheus.Registerer

	// TracerProvider, when tracing is on, gets a "process <Queue>" span
	// (kind consumer) per message, a child of the trace context in the
	// message's traceparent header; see Delivery.Context and the README's
	// Tracing section. Default nil: OpenTelemetry's global provider as it
	// is when New runs. While that (or the given provider) is a no-op, the
	// consumer does nothing per message for tracing.
	TracerProvider trace.TracerProvider
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Exchange == "" {
		c.Exchange = ExchangeDefault
	}
	if c.ExchangeType == "" {
		c.ExchangeType = ExchangeTypeDefault
	}
	if len(c.BindingKeys) == 0 {
		c.BindingKeys = []string{BindingKeyAll}
	} else {
		c.BindingKeys = slices.Clone(c.BindingKeys)
	}
	if c.Prefetch == 0 {
		c.Prefetch = PrefetchDefault
	}
	if c.BatchSize == 0 {
		c.BatchSize = min(BatchSizeDefault, c.Prefetch)
	}
	if c.Concurrency == 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = RetryBackoffDefault
	}
	if c.RetryBackoffMax == 0 {
		c.RetryBackoffMax = max(RetryBackoffMaxDefault, c.RetryBackoff)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = MaxAttemptsDefault
	}
	if c.DeliveryLimit == 0 {
		c.DeliveryLimit = DeliveryLimitDefault
	}
	if c.InboxRetention == 0 {
		c.InboxRetention = InboxRetentionDefault
	}
	if c.TxTimeout == 0 {
		c.TxTimeout = TxTimeoutDefault
	}
	if c.Handler == nil {
		c.Handler = AnalyticsHandler
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// maxQueueNameBytes leaves room for the ".dead" suffix within AMQP's 255 bytes.
const maxQueueNameBytes = 250

func (c Config) validate() error {
	switch {
	case c.Queue == "":
		return errors.New("consumer: Queue is required (the consumer group's queue name, e.g. \"analytics.counts\")")
	case len(c.Queue) > maxQueueNameBytes:
		return fmt.Errorf("consumer: Queue is %d bytes long, at most %d are allowed", len(c.Queue), maxQueueNameBytes)
	case strings.HasPrefix(c.Queue, "amq."):
		return fmt.Errorf("consumer: Queue %q starts with \"amq.\", which RabbitMQ reserves", c.Queue)
	case strings.HasPrefix(c.Exchange, "amq."):
		return fmt.Errorf("consumer: Exchange %q starts with \"amq.\", which RabbitMQ reserves", c.Exchange)
	case c.ExchangeType != ExchangeTopic && c.ExchangeType != ExchangeFanout:
		return fmt.Errorf("consumer: ExchangeType must be %q or %q, got %q", ExchangeTopic, ExchangeFanout, c.ExchangeType)
	case c.Prefetch < 1 || c.Prefetch > 65535:
		return fmt.Errorf("consumer: Prefetch must be between 1 and 65535, got %d", c.Prefetch)
	case c.BatchSize < 1 || c.BatchSize > c.Prefetch:
		return fmt.Errorf("consumer: BatchSize must be between 1 and Prefetch (%d), got %d", c.Prefetch, c.BatchSize)
	case c.Concurrency < 1:
		return fmt.Errorf("consumer: Concurrency must be at least 1, got %d", c.Concurrency)
	case c.RetryBackoff < 0 || c.RetryBackoffMax < c.RetryBackoff:
		return fmt.Errorf("consumer: RetryBackoff (%v) must not be negative nor exceed RetryBackoffMax (%v)", c.RetryBackoff, c.RetryBackoffMax)
	case c.MaxAttempts < 1:
		return fmt.Errorf("consumer: MaxAttempts must be at least 1, got %d", c.MaxAttempts)
	case c.DeliveryLimit < -1:
		return fmt.Errorf("consumer: DeliveryLimit must be positive, or -1 for the broker's default, got %d", c.DeliveryLimit)
	case c.TxTimeout < 0:
		return fmt.Errorf("consumer: TxTimeout must not be negative, got %v", c.TxTimeout)
	}
	for _, k := range c.BindingKeys {
		if len(k) > 255 {
			return fmt.Errorf("consumer: binding key %.20q... is %d bytes long, at most 255 are allowed", k, len(k))
		}
	}
	return nil
}
