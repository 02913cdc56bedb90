package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"strconv"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the database/sql driver "pgx"

	"github.com/jobsd/jobsd/outbox"
)

// Write an event in the same *sql.Tx as rows written through database/sql
// (by sqlc, GORM, Bun, ent or by hand), with pgx's database/sql driver.
func ExampleWriteSQL() {
	ctx := context.Background()
	db, err := sql.Open("pgx", exampleDB.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var userID int64
	err = tx.QueryRowContext(ctx, "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id",
		"grace@example.com", "Grace").Scan(&userID)
	if err != nil {
		log.Fatal(err)
	}
	err = outbox.WriteSQL(ctx, tx, outbox.Event{
		Topic:   "user.signed_up",
		Key:     "user-" + strconv.FormatInt(userID, 10),
		Payload: map[string]string{"email": "grace@example.com"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}

	var topic, payload string
	err = db.QueryRowContext(ctx, "SELECT topic, payload::text FROM outbox_event WHERE key = $1",
		"user-"+strconv.FormatInt(userID, 10)).Scan(&topic, &payload)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(topic, payload)

	// Output:
	// user.signed_up {"email": "grace@example.com"}
}
