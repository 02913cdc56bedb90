package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/internal/database"
	"github.com/jobsd/jobsd/internal/migrate"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "create the database if needed and apply River's and jobsd's migrations (idempotent)",
		Description: "Runs in one transaction under an advisory lock: two processes migrating at once are safe.\n\n" +
			"Example:\n   jobsd migrate --json",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			created, err := database.EnsureExists(c.Context, c.String("database-url"))
			if err != nil {
				return err
			}
			pool, err := openPool(c)
			if err != nil {
				return err
			}
			defer pool.Close()
			applied, err := migrate.Up(c.Context, pool)
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			if c.Bool("json") {
				if applied == nil {
					applied = []migrate.Applied{}
				}
				return writeJSON(c, map[string]any{"database_created": created, "applied": applied})
			}
			out := c.App.Writer
			if created {
				fmt.Fprintln(out, "created database")
			}
			for _, a := range applied {
				fmt.Fprintf(out, "applied %s migration %03d %s\n", a.Line, a.Version, a.Name)
			}
			if len(applied) == 0 {
				fmt.Fprintln(out, "schema is up to date")
			}
			return nil
		},
	}
}
