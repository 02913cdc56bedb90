// Package sql embeds every SQL file of jobsd: the schema migrations applied by
// `jobsd migrate` (migrations/), the statements the Go code runs (app/), and the
// operator queries meant for psql (queries/).
//
// Keeping SQL in .sql files makes it readable, diffable and runnable by hand.
// This package imports only the standard library.
package sql

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql app/*.sql queries/*.sql
var files embed.FS

// Statement returns the text of app/<name>.sql. It panics when the file does not
// exist, so a typo fails at package initialisation rather than at run time.
func Statement(name string) string {
	b, err := files.ReadFile("app/" + name + ".sql")
	if err != nil {
		panic(fmt.Sprintf("sql: no statement app/%s.sql embedded", name))
	}
	return string(b)
}

// Queries returns the operator queries of queries/, keyed by file name.
func Queries() fs.FS {
	sub, err := fs.Sub(files, "queries")
	if err != nil {
		panic(err)
	}
	return sub
}

// Migration is one schema change of jobsd's own tables.
type Migration struct {
	Version int    // from the file name's numeric prefix: 001_outbox.sql is version 1
	Name    string // the file name without prefix and extension: "outbox"
	SQL     string
}

// Migrations returns jobsd's migrations in version order. River's own tables are
// not here: they come from rivermigrate.
func Migrations() []Migration {
	entries, err := files.ReadDir("migrations")
	if err != nil {
		panic(err)
	}
	out := make([]Migration, 0, len(entries))
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			panic(fmt.Sprintf("sql: migration file %q must be named NNN_name.sql", e.Name()))
		}
		b, _ := files.ReadFile("migrations/" + e.Name())
		out = append(out, Migration{Version: version, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}
