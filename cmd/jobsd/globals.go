package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/jobsd/jobsd/internal/database"
)

// Global flags: --database-url, --amqp-url, --log-format and --log-level are
// accepted before the command (jobsd --database-url U stats) and after it
// (jobsd stats --database-url U), like River's CLI.
//
// The root command holds the real flags, with their environment variables
// and defaults. Every command gets a hidden copy of each, without environment
// variables (its help keeps its own flags in their order and ends with one
// GLOBAL OPTIONS line), and its Before takes the parent's value when the copy
// was not given on its own command line: the position nearest the command
// wins, then the position before it, then the environment, then the *_FILE
// variable, then the default.

// globalFlag describes one global flag.
type globalFlag struct {
	name, env, usage string
	value            string // default
	defaultText      string // shown instead of value, e.g. without a password
	fileEnv          string // names a file holding the value (secrets), or ""
}

func globalFlagSpecs() []globalFlag {
	return []globalFlag{
		{name: "database-url", env: "DATABASE_URL", fileEnv: "DATABASE_URL_FILE", value: database.DefaultURL,
			usage: "Postgres connection URL; DATABASE_URL_FILE may name a file holding it"},
		{name: "amqp-url", env: "AMQP_URL", fileEnv: "AMQP_URL_FILE", value: amqpURLDefault,
			defaultText: database.Redact(amqpURLDefault), // --help never shows a password
			usage:       "RabbitMQ connection URL, or several (a cluster's nodes) separated by commas; AMQP_URL_FILE may name a file holding it"},
		{name: "log-format", env: "JOBSD_LOG_FORMAT", value: "text",
			usage: "log format: text or json"},
		{name: "log-level", env: "JOBSD_LOG_LEVEL", value: "info",
			usage: "log level: debug, info, warn or error"},
	}
}

// globalHelp ends the help of every command.
const globalHelp = `
GLOBAL OPTIONS:
   --database-url, --amqp-url, --log-format, --log-level: before or after the command (see 'jobsd --help')
`

// rootFlags are the root command's flags: the global flags and --version.
func rootFlags() []cli.Flag {
	var flags []cli.Flag
	for _, g := range globalFlagSpecs() {
		flags = append(flags, &cli.StringFlag{Name: g.name, EnvVars: []string{g.env}, Value: g.value,
			DefaultText: g.defaultText, Usage: g.usage})
	}
	return append(flags, &cli.BoolFlag{Name: "version", Usage: "print the version, commit and Go version, and exit"})
}

// addGlobalFlags gives every command in cmds, and their subcommands, a copy
// of the global flags and a Before that resolves them.
func addGlobalFlags(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.Flags = cmd.Flags[:len(cmd.Flags):len(cmd.Flags)] // append copies: the slice may be shared
		for _, g := range globalFlagSpecs() {
			if hasFlag(cmd, g.name) {
				panic("jobsd: command " + cmd.Name + " defines global flag --" + g.name)
			}
			cmd.Flags = append(cmd.Flags, &cli.StringFlag{Name: g.name, Value: g.value, Usage: g.usage, Hidden: true})
		}
		if cmd.CustomHelpTemplate == "" {
			cmd.CustomHelpTemplate = cli.CommandHelpTemplate
			if len(cmd.Subcommands) > 0 {
				cmd.CustomHelpTemplate = cli.SubcommandHelpTemplate
			}
			cmd.CustomHelpTemplate += globalHelp
		}
		before := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			if err := inheritGlobals(c); err != nil {
				return err
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
		addGlobalFlags(cmd.Subcommands)
	}
}

func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// inheritGlobals runs in a command's Before, after its parent's: a global flag
// not given on this command's own command line takes the parent's value when
// the parent had one (given, from the environment or from a file); otherwise
// it keeps the default, and IsSet stays false.
func inheritGlobals(c *cli.Context) error {
	lineage := c.Lineage()
	if len(lineage) < 2 {
		return nil
	}
	parent := lineage[1]
	local := c.LocalFlagNames()
	relog := false
	for _, g := range globalFlagSpecs() {
		if contains(local, g.name) {
			relog = relog || strings.HasPrefix(g.name, "log-")
			continue
		}
		if parent.IsSet(g.name) {
			if err := c.Set(g.name, parent.String(g.name)); err != nil {
				return err
			}
		}
	}
	if relog {
		return setLogger(c)
	}
	return nil
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// setLogger makes --log-format and --log-level the default slog logger. Its
// lines name the command as their component unless they name another.
func setLogger(c *cli.Context) error {
	log, err := newLogger(c.String("log-format"), c.String("log-level"), commandName(c), c.App.ErrWriter)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	return nil
}

// commandName is the command that runs ("serve", "consume"), or "jobsd"
// before one is known.
func commandName(c *cli.Context) string {
	if c.Command != nil && c.Command.Name != "" {
		return c.Command.Name
	}
	if name := c.Args().First(); name != "" && c.App.Command(name) != nil {
		return c.App.Command(name).Name // an alias names its command
	}
	return "jobsd"
}

// readSecretFiles sets each flag of specs that has a file variant, is not set
// (on the command line or by its environment variable) and whose *_FILE
// variable is set, to the content of that file without its trailing newline.
func readSecretFiles(c *cli.Context, specs []globalFlag) error {
	for _, g := range specs {
		if g.fileEnv == "" || c.IsSet(g.name) {
			continue
		}
		path := os.Getenv(g.fileEnv)
		if path == "" {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			// The error names the file, never its content.
			return usagef("%s: cannot read %s: %v", g.fileEnv, path, unwrapPathError(err))
		}
		value := strings.TrimRight(string(data), "\r\n")
		if value == "" {
			return usagef("%s: %s is empty", g.fileEnv, path)
		}
		if err := c.Set(g.name, value); err != nil {
			return fmt.Errorf("--%s from %s: %w", g.name, g.fileEnv, err)
		}
	}
	return nil
}

// unwrapPathError drops the *fs.PathError's repetition of the path.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
