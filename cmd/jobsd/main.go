// Command jobsd runs and operates a jobsd installation: migrations, workers and
// relay (serve), signups, job and outbox inspection. See `jobsd --help`.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}
