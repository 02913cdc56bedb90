package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"

	"github.com/jobsd/jobsd/internal/bench"
	"github.com/jobsd/jobsd/internal/testbroker"
	"github.com/jobsd/jobsd/internal/testdb"
)

func TestZZDebugDrain(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	n, _ := strconv.Atoi(os.Getenv("ZZ"))
	db := testdb.New(t)
	url := testbroker.New(t).URL
	ctx := bench.WithLogger(context.Background(), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx = bench.WithProgress(ctx, func(m string) { fmt.Fprintln(os.Stderr, m) })
	r, err := bench.RelayDrainNoConsumer(ctx, db.Pool, url, n, 1000, 1)
	fmt.Println(r, err)
}
