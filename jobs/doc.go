// Package jobs defines jobsd's critical jobs: River job args and their workers.
// A critical job is retried with River's backoff until it succeeds or exhausts
// its attempts; River rescues the jobs of a worker process that died.
//
// # Inserting jobs from an application
//
// An application inserts jobs with its own River client, built on the pgx
// pool it writes its rows with, inside the transaction that also calls
// outbox.Write (the database must be migrated first: package
// github.com/jobsd/jobsd/migrate, or `jobsd migrate`):
//
//	// Insert-only: no Workers, no Queues, no Start. `jobsd serve` works the jobs.
//	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
//	...
//	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		// the application's rows ...
//		if _, err := client.InsertManyTx(ctx, tx, jobs.ProfileJobs(userID)); err != nil {
//			return err
//		}
//		return outbox.Write(ctx, tx, outbox.Event{Topic: "user.signed_up", Key: strconv.FormatInt(userID, 10), Payload: user})
//	})
//
// # Who works which kind
//
// `jobsd serve` registers only jobsd's workers (AddWorkers: create_profile)
// and works River's default queue (river.QueueDefault). A job of any other
// kind inserted into that queue is fetched by `jobsd serve` all the same and
// fails with River's "job kind is not registered" error at every attempt
// until it is discarded (25 attempts by default). An application with job
// kinds of its own therefore either
//
//   - inserts them into a queue of its own (river.InsertOpts{Queue: "app"})
//     and works that queue with its own client, or
//   - works every kind, jobsd's included, in its own client, with no `jobsd
//     serve` working jobs on that database (it would fetch the application's
//     kinds from the default queue too); the application then runs the
//     relay itself (package relay: relay.New(pool, amqpURL, cfg) and Run).
//
// Its own client registers jobsd's workers next to its own:
//
//	workers := river.NewWorkers()
//	jobs.AddWorkers(workers, pool, jobs.Config{}) // create_profile
//	river.AddWorker(workers, &WelcomeEmailWorker{}) // the application's kinds
//	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
//		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}, "app": {MaxWorkers: 10}},
//		Workers: workers,
//	})
//	...
//	if err := client.Start(ctx); err != nil { ... } // and client.Stop(ctx) on shutdown
//
// A client with Workers refuses, at insert, a kind it has no worker for
// (River's UnknownJobKindError); an insert-only client (no Workers) does not
// check. Every process that works jobs should get the same RescueStuckJobsAfter
// and JobTimeout: River runs its rescuer on one elected leader only. A River
// client started this way is rescued by River alone; `jobsd serve` also
// registers its client in jobsd_process, so that the jobs of a serve killed
// with -9 are rescued by another serve within seconds (README, "Recovery after
// kill -9").
//
// It may import River, pgx and the sql package; not the relay or the CLI.
package jobs
