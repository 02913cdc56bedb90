package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// helpCommand is `jobsd help [command [subcommand]]`, the same as
// `jobsd [command [subcommand]] --help`.
func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Usage:     "show the help of a command, e.g. jobsd help jobs list",
		ArgsUsage: "[command [subcommand]]",
		Action: func(c *cli.Context) error {
			var path []string
			for _, arg := range c.Args().Slice() {
				if !strings.HasPrefix(arg, "-") { // jobsd help retry --help
					path = append(path, arg)
				}
			}
			cmds := c.App.Commands
			for i, name := range path {
				cmd := findCommand(cmds, name)
				if cmd == nil {
					return usagef("unknown command %q (see 'jobsd --help')", strings.Join(path[:i+1], " "))
				}
				cmds = cmd.Subcommands
			}
			args := append(append([]string{"jobsd"}, path...), "--help")
			return newApp(c.App.Writer, c.App.ErrWriter).RunContext(c.Context, args)
		},
	}
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, cmd := range cmds {
		if cmd.HasName(name) {
			return cmd
		}
	}
	return nil
}
