package jobs

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
)

// DefaultServices are the downstream services a signup creates a profile in.
var DefaultServices = []string{"ride", "pay", "food"}

// Config configures the workers. The zero value is valid: no injected faults.
type Config struct {
	// Faults injects failures and latency into profile creation, for demos and
	// tests. Zero value: none.
	Faults Faults
}

// Kinds returns the job kinds AddWorkers registers.
func Kinds() []string { return []string{CreateProfileArgs{}.Kind()} }

// AddWorkers registers every jobsd worker with workers.
func AddWorkers(workers *river.Workers, pool *pgxpool.Pool, cfg Config) {
	river.AddWorker(workers, &ProfileWorker{pool: pool, faults: cfg.Faults})
}

// ProfileJobs returns one create_profile job per service for userID, ready for
// River's InsertManyTx. With no services it uses DefaultServices.
func ProfileJobs(userID int64, services ...string) []river.InsertManyParams {
	if len(services) == 0 {
		services = DefaultServices
	}
	params := make([]river.InsertManyParams, len(services))
	for i, s := range services {
		params[i] = river.InsertManyParams{Args: CreateProfileArgs{UserID: userID, Service: s}}
	}
	return params
}
