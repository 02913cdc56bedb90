package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUsageErrors: bad command lines exit 2 before starting any server.
func TestUsageErrors(t *testing.T) {
	t.Setenv("SCENARIOS", "")
	t.Setenv("CHAOS_DURATION", "")
	for _, args := range [][]string{
		{"-scenarios", "nope"},
		{"-scenarios", "crash_recovery nope"},
		{"-jobsd", "/nonexistent/jobsd"},
		{"-duration", "-1s"},
		{"-bogus"},
		{"crash_recovery"},
	} {
		require.Equal(t, 2, run(args), "chaos %v", args)
	}
	t.Setenv("CHAOS_DURATION", "soon")
	require.Equal(t, 2, run(nil), "an invalid CHAOS_DURATION")
}

func TestList(t *testing.T) {
	require.Equal(t, 0, run([]string{"-list"}))
}
