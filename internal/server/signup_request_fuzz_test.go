package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/jobsd/jobsd/signup"
)

// signupSeeds is the seed corpus of FuzzDecodeSignup: the files of the
// top-level testdata/signup directory.
const signupSeeds = "../../testdata/signup"

// FuzzDecodeSignup: whatever the body, decodeSignup does not panic; what it
// accepts is one JSON object (trailing whitespace only) whose email and name
// pass signup.Normalize unchanged; what it refuses is a 4xx, and 413 only
// for a body over MaxSignupBody.
func FuzzDecodeSignup(f *testing.F) {
	entries, err := os.ReadDir(signupSeeds)
	require.NoError(f, err)
	require.NotEmpty(f, entries)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(signupSeeds, e.Name()))
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte(`{"email": "big@example.com", "name": "` + strings.Repeat("n", MaxSignupBody) + `"}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		body := http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(data)), MaxSignupBody)
		req, reqErr := decodeSignup(body)
		if reqErr != nil {
			require.GreaterOrEqual(t, reqErr.status, 400, reqErr.msg)
			require.Less(t, reqErr.status, 500, reqErr.msg)
			require.NotEmpty(t, reqErr.msg)
			if len(data) <= MaxSignupBody {
				require.NotEqual(t, http.StatusRequestEntityTooLarge, reqErr.status, reqErr.msg)
			}
			return
		}
		require.LessOrEqual(t, len(data), MaxSignupBody)
		require.True(t, utf8.Valid(data), "accepted %q, which is not UTF-8", data)
		require.True(t, json.Valid(bytes.TrimRight(data, " \t\r\n")), "accepted %q, which is not one JSON value", data)
		email, name, err := signup.Normalize(req.Email, req.Name)
		require.NoError(t, err, "accepted %q", data)
		require.Equal(t, req, signupRequest{Email: email, Name: name}, "accepted %q without normalizing it", data)
	})
}

// TestDecodeSignupSeeds: the seeds named valid* are accepted, the others
// refused with 400.
func TestDecodeSignupSeeds(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(signupSeeds)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(signupSeeds, e.Name()))
		require.NoError(t, err)
		_, reqErr := decodeSignup(bytes.NewReader(data))
		if strings.HasPrefix(e.Name(), "valid") {
			require.Nil(t, reqErr, e.Name())
			continue
		}
		require.NotNil(t, reqErr, e.Name())
		require.Equal(t, http.StatusBadRequest, reqErr.status, e.Name())
	}
}
