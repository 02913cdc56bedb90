package main

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"
)

// errVersionShown ends a run after --version printed the version: exit 0.
var errVersionShown = errors.New("version shown")

// buildVersion is what the binary knows about its build.
type buildVersion struct {
	Version  string `json:"version"`  // module version, "(devel)" for a build from a checkout
	Commit   string `json:"commit"`   // VCS revision, "" when unknown
	Modified bool   `json:"modified"` // built from a working tree with changes
	Go       string `json:"go"`       // Go version
	Platform string `json:"platform"` // GOOS/GOARCH
}

// readVersion reads the module version, VCS revision and Go version that the
// Go toolchain embeds in the binary.
func readVersion() buildVersion {
	v := buildVersion{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is one line: "jobsd (devel) commit 0123456789ab+dirty go1.25.0 linux/amd64".
func (v buildVersion) String() string {
	commit := "unknown"
	if v.Commit != "" {
		commit = v.Commit
		if len(commit) > 12 {
			commit = commit[:12]
		}
		if v.Modified {
			commit += "+dirty"
		}
	}
	return fmt.Sprintf("jobsd %s commit %s %s %s", v.Version, commit, v.Go, v.Platform)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, VCS commit and Go version (same as jobsd --version)",
		Description: "Prints the module version (\"(devel)\" for a build from a checkout), the commit it was\n" +
			"built from (+dirty when the working tree had changes) and the Go version.\n\n" +
			"Examples:\n   jobsd version\n   jobsd version --json",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("version takes no arguments")
			}
			v := readVersion()
			if c.Bool("json") {
				return writeJSON(c, v)
			}
			_, err := fmt.Fprintln(c.App.Writer, v)
			return err
		},
	}
}

// buildInfo is the gauge jobsd_build_info{version,commit,go_version} = 1 that
// serve and consume export, so that dashboards can tell which build runs.
func buildInfo() prometheus.Collector {
	v := readVersion()
	commit := v.Commit
	if commit == "" {
		commit = "unknown"
	} else if v.Modified {
		commit += "+dirty"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "jobsd_build_info",
		Help:        "Always 1; the labels name the running build (module version, VCS commit, Go version).",
		ConstLabels: prometheus.Labels{"version": v.Version, "commit": commit, "go_version": v.Go},
	})
	g.Set(1)
	return g
}
