package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/jobsd/jobsd/outbox"
)

// Write an event in the same transaction as the application's own rows. The
// relay publishes it only once the transaction commits; had it rolled back,
// the event would never have existed.
func ExampleWrite() {
	ctx := context.Background()
	pool := exampleDB.Pool // a *pgxpool.Pool on a migrated jobsd database

	type signedUp struct {
		UserID int64  `json:"user_id"`
		Email  string `json:"email"`
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// ... the application's own INSERTs go here, in tx ...
		return outbox.Write(ctx, tx, outbox.Event{
			Topic:   "user.signed_up",
			Key:     "42", // events of one key are published in commit order
			Payload: signedUp{UserID: 42, Email: "ada@example.com"},
			Headers: map[string]string{"source": "example"},
		})
	})
	if err != nil {
		log.Fatal(err)
	}

	var topic, key, payload, headers, state string
	err = pool.QueryRow(ctx, `SELECT topic, key, payload::text, headers::text, state
		FROM outbox_event WHERE key = '42'`).Scan(&topic, &key, &payload, &headers, &state)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(topic, key, state)
	fmt.Println(payload)
	fmt.Println(headers)

	// Output:
	// user.signed_up 42 pending
	// {"email": "ada@example.com", "user_id": 42}
	// {"source": "example"}
}

// An invalid event is rejected before anything is sent to Postgres, so the
// transaction stays usable.
func ExampleWrite_invalid() {
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, exampleDB.Pool, func(tx pgx.Tx) error {
		return outbox.Write(ctx, tx, outbox.Event{Topic: "user.signed_up", Payload: []byte(`{"user_id": 42,}`)})
	})
	fmt.Println(errors.Is(err, outbox.ErrInvalidEvent))
	fmt.Println(err)

	// Output:
	// true
	// outbox: event 0: invalid outbox event: payload is not valid JSON
}
