package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// widthDefault is the table width when stdout is not a terminal and COLUMNS
// is unset.
const widthDefault = 120

// terminalWidth is COLUMNS when set, the terminal's width when w is one, and
// widthDefault otherwise.
func terminalWidth(w io.Writer) int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	return widthDefault
}

// table writes aligned columns, each line cut to the terminal's width.
type table struct {
	out   io.Writer
	buf   bytes.Buffer
	tw    *tabwriter.Writer
	width int
}

func newTable(out io.Writer, header ...string) *table {
	t := &table{out: out, width: terminalWidth(out)}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(oneLine(c), "\t", " ")
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(t.buf.String(), "\n"), "\n") {
		if _, err := fmt.Fprintln(t.out, cut(strings.TrimRight(line, " "), t.width)); err != nil {
			return err
		}
	}
	return nil
}

// cut shortens s to width runes, marking the cut with "…".
func cut(s string, width int) string {
	if width < 1 || utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

// age formats how long ago t was: 42s, 5m3s, 3h5m, 2d3h.
func age(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// timestamp formats t for humans, in UTC; "-" for nil.
func timestamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}
