package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/jobsd/jobsd/internal/database"
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
			"amqp_url", database.Redact(amqpURL), "err", dialErr.Error())
	}
	return nil
}

// dialBroker dials amqpURL once and hangs up. It returns as err what retrying
// cannot fix (see brokerRefused), and as dialErr any other failure to connect.
func dialBroker(amqpURL string) (dialErr, err error) {
	uri, err := amqp.ParseURI(amqpURL)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, usagef("invalid --amqp-url %s (expected amqp://user:password@host:port/vhost)", database.Redact(amqpURL))
	}
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{
		Locale:     "en_US",
		Dial:       amqp.DefaultDial(brokerDialTimeout),
		Properties: amqp.Table{"connection_name": "jobsd pre-flight"},
	})
	if err == nil {
		_ = conn.Close()
		return nil, nil
	}
	if refused := brokerRefused(database.Redact(amqpURL), uri.Vhost, err); refused != nil {
		return nil, refused
	}
	return err, nil
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
