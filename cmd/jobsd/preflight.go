package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/internal/database"
	"github.com/jobsd/jobsd/relay"
)

// brokerDialTimeout bounds the pre-flight dial of serve.
const brokerDialTimeout = 5 * time.Second

// checkBroker dials amqpURL once, before serve starts its relay, and hangs
// up. What retrying cannot fix is an error: an unparsable URL, credentials or
// a virtual host the broker refuses. A broker that is down or slow is only a
// warning: the outbox keeps the events and the relay reconnects.
func checkBroker(amqpURL string, log *slog.Logger) error {
	dialErr, err := dialBroker(amqpURL)
	if err != nil {
		return err
	}
	if dialErr != nil {
		log.Warn("RabbitMQ is unreachable; serving anyway: events wait in the outbox and the relay keeps reconnecting",
			"amqp_url", relay.RedactURL(amqpURL), "err", dialErr.Error())
	}
	return nil
}

// dialBroker dials each broker of amqpURL (one URL, or several separated by
// commas) once, in order, until one answers, and hangs up. It returns as err
// what retrying cannot fix (an invalid URL; see brokerRefused), and as
// dialErr the failures to connect when no broker answered.
func dialBroker(amqpURL string) (dialErr, err error) {
	urls := relay.SplitURLs(amqpURL)
	if len(urls) == 0 {
		return nil, usagef("empty --amqp-url (expected amqp://user:password@host:port/vhost, or several separated by commas)")
	}
	uris := make([]amqp.URI, len(urls))
	for i, u := range urls {
		if uris[i], err = amqp.ParseURI(u); err != nil {
			// The parse error may quote the URL, password included.
			return nil, usagef("invalid --amqp-url %s (expected amqp://user:password@host:port/vhost)", database.Redact(u))
		}
	}
	var errs []error
	for i, u := range urls {
		conn, err := amqp.DialConfig(u, amqp.Config{
			Locale:     "en_US",
			Dial:       amqp.DefaultDial(brokerDialTimeout),
			Properties: amqp.Table{"connection_name": "jobsd pre-flight"},
		})
		if err == nil {
			_ = conn.Close()
			return nil, nil
		}
		if refused := brokerRefused(database.Redact(u), uris[i].Vhost, err); refused != nil {
			return nil, refused
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...), nil
}

// brokerRefused returns the error to exit with when err, from dialling, is
// the broker refusing the credentials or the virtual host, and nil otherwise.
func brokerRefused(redactedURL, vhost string, err error) error {
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) {
		return nil
	}
	switch {
	case errors.Is(err, amqp.ErrVhost):
		return fmt.Errorf("RabbitMQ refused access to virtual host %q for %s (%s): check --amqp-url and the user's permissions",
			vhost, redactedURL, amqpErr.Reason)
	case amqpErr.Code == amqp.AccessRefused:
		return fmt.Errorf("RabbitMQ refused the credentials for %s (403 ACCESS_REFUSED): check --amqp-url / AMQP_URL", redactedURL)
	case amqpErr.Code == amqp.NotAllowed:
		return fmt.Errorf("RabbitMQ refused access to virtual host %q for %s (530 %s): check --amqp-url and the user's permissions",
			vhost, redactedURL, amqpErr.Reason)
	}
	return nil
}
