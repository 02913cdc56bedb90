package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	jsql "github.com/jobsd/jobsd/sql"
)

var (
	marksSQL        = jsql.Statement("chaos_marks")
	behindSQL       = jsql.Statement("chaos_behind")
	countsSQL       = jsql.Statement("chaos_counts")
	missingUsersSQL = jsql.Statement("chaos_missing_users")
	backendsSQL     = jsql.Statement("chaos_backends")
)

// marks are the last event and job ids at a moment.
type marks struct{ event, job int64 }

func readMarks(ctx context.Context, pool *pgxpool.Pool) (marks, error) {
	var m marks
	err := pool.QueryRow(ctx, marksSQL).Scan(&m.event, &m.job)
	return m, err
}

// behind counts the events up to m not applied by queue and the jobs up to m
// not final.
func behind(ctx context.Context, pool *pgxpool.Pool, m marks, queue string) (events, jobs int64, err error) {
	err = pool.QueryRow(ctx, behindSQL, m.event, m.job, queue).Scan(&events, &jobs)
	return events, jobs, err
}

// counts are the database's figures after a scenario.
type counts struct {
	Users, Profiles, JobsStuck                       int64
	EventsPending, EventsDead, EventsPublished       int64
	Events, EventsApplied, Effects, EventsNotApplied int64
	AckedMissing                                     int64 // acknowledged signups without a user
}

func readCounts(ctx context.Context, pool *pgxpool.Pool, queue string, acked []string) (counts, error) {
	var c counts
	err := pool.QueryRow(ctx, countsSQL, queue).Scan(&c.Users, &c.Profiles, &c.JobsStuck,
		&c.EventsPending, &c.EventsDead, &c.EventsPublished, &c.Events, &c.EventsApplied, &c.Effects,
		&c.EventsNotApplied)
	if err != nil {
		return c, err
	}
	err = pool.QueryRow(ctx, missingUsersSQL, acked).Scan(&c.AckedMissing)
	return c, err
}

// witnessTimeout bounds the reading of the witness queue.
const witnessTimeout = 2 * time.Minute

// witness is what the harness's own queue, bound to the exchange with '#',
// received: every message the broker accepted from the relays.
type witness struct {
	Messages   int64 // deliveries, duplicates included
	Distinct   int64 // distinct message ids
	Violations int64 // ordered events that arrived before an event of their key with a smaller number
	// Examples names the first violations: key, number, the larger number
	// that arrived before it, and their positions in the queue.
	Examples []string
}

// readWitness empties the witness queue and checks it: duplicates (the same
// message id more than once) and per-key order of the ordered events (each
// id's first arrival must come after the first arrivals of the smaller
// numbers of its key).
func readWitness(urls []string, queue string) (witness, error) {
	var conn *amqp.Connection
	var err error
	for _, u := range urls {
		if conn, err = amqp.Dial(u); err == nil {
			break
		}
	}
	if err != nil {
		return witness{}, fmt.Errorf("read witness queue: %w", err)
	}
	defer conn.Close()
	// A quorum queue without a majority does not answer: give up rather
	// than hang (closing the connection fails the pending Get).
	timer := time.AfterFunc(witnessTimeout, func() { _ = conn.Close() })
	defer timer.Stop()
	ch, err := conn.Channel()
	if err != nil {
		return witness{}, err
	}
	defer ch.Close()
	var w witness
	seen := make(map[string]bool)
	last := make(map[string]int64)
	lastPos := make(map[string]int64)
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			return w, fmt.Errorf("read witness queue: %w", err)
		}
		if !ok {
			break
		}
		w.Messages++
		if d.MessageId == "" {
			return w, errors.New("witness: a message without message_id")
		}
		if seen[d.MessageId] {
			continue
		}
		seen[d.MessageId] = true
		w.Distinct++
		if d.Type != OrderTopic {
			continue
		}
		var p orderPayload
		if err := json.Unmarshal(d.Body, &p); err != nil {
			return w, fmt.Errorf("witness: ordered event %s: %w", d.MessageId, err)
		}
		if p.Seq < last[p.Key] {
			w.Violations++
			if len(w.Examples) < 5 {
				w.Examples = append(w.Examples, fmt.Sprintf("%s #%d (message %d, redelivered=%v) after #%d (message %d)",
					p.Key, p.Seq, w.Messages, d.Redelivered, last[p.Key], lastPos[p.Key]))
			}
		} else {
			last[p.Key], lastPos[p.Key] = p.Seq, w.Messages
		}
	}
	return w, nil
}

// declareWitness declares the exchange as the relay does (durable topic) and
// the witness quorum queue bound to it with '#'.
func declareWitness(urls []string, exchange, queue string) error {
	var conn *amqp.Connection
	var err error
	for _, u := range urls {
		if conn, err = amqp.Dial(u); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		return err
	}
	return ch.QueueBind(queue, "#", exchange, false, nil)
}

// deleteTopology removes the scenario's exchanges and queues.
func deleteTopology(urls []string, exchange string, queues ...string) {
	for _, u := range urls {
		conn, err := amqp.Dial(u)
		if err != nil {
			continue
		}
		for _, q := range queues {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
				_ = ch.Close()
			}
		}
		for _, x := range []string{exchange, queues[0] + ".dlx"} {
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(x, false, false)
				_ = ch.Close()
			}
		}
		_ = conn.Close()
		return
	}
}

// splitURLs splits a comma-separated URL list.
func splitURLs(s string) []string { return strings.Split(s, ",") }
