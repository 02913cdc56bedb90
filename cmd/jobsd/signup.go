package main

import (
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/signup"
)

func signupCommand() *cli.Command {
	return &cli.Command{
		Name:      "signup",
		Usage:     "sign a user up: user row, profile jobs and analytics event in one transaction",
		UsageText: "jobsd signup --email E [--name N] [--json]",
		Description: "Prints the user id, the create_profile job ids and the outbox event id.\n\n" +
			"Example:\n   jobsd signup --email ada@example.com --name Ada",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "email", Usage: "the user's email (required, unique)"},
			&cli.StringFlag{Name: "name", Usage: "the user's name"},
			maxAttemptsFlag(),
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			if !c.IsSet("email") {
				return usagef("missing --email (see 'jobsd signup --help')")
			}
			email, name, err := signup.Normalize(c.String("email"), c.String("name"))
			if err != nil {
				return usagef("%v", err)
			}
			if c.Int("max-attempts") < 1 {
				return usagef("--max-attempts must be at least 1")
			}
			pool, err := openPool(c)
			if err != nil {
				return err
			}
			defer pool.Close()
			client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{MaxAttempts: c.Int("max-attempts")})
			if err != nil {
				return err
			}
			res, err := (&signup.Service{Pool: pool, River: client}).Signup(c.Context, email, name)
			if err != nil { // a duplicate email, the database down, ...: the transaction rolled back
				return fmt.Errorf("signup not written: %w", err)
			}
			if c.Bool("json") {
				return writeJSON(c, res)
			}
			fmt.Fprintf(c.App.Writer, "user %d %s\njobs %v\nevent %d\n", res.User.ID, res.User.Email, res.JobIDs, res.EventID)
			return nil
		},
	}
}

func maxAttemptsFlag() cli.Flag {
	return &cli.IntFlag{Name: "max-attempts", EnvVars: []string{"JOBSD_MAX_ATTEMPTS"}, Value: river.MaxAttemptsDefault,
		Usage: "attempts of each profile job before it is discarded (set at insert time)"}
}
