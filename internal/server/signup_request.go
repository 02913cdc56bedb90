package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"unicode/utf8"

	"github.com/jobsd/jobsd/signup"
)

// MaxSignupBody bounds a POST /signup body; a larger one is answered 413.
const MaxSignupBody = 64 << 10

// signupRequest is the body of POST /signup.
type signupRequest struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// requestError is a refused request: the HTTP status (4xx) and a message for
// the client.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// decodeSignup reads a POST /signup body: exactly one JSON object with the
// fields "email" (required) and "name" (optional), nothing else, in UTF-8.
// Field names match case-insensitively and the last of duplicate fields wins,
// as encoding/json does. Unknown
// fields are refused (a misspelt "nmae" should not silently sign up a user
// without a name), and so is anything but whitespace after the object. The
// email and name are validated and normalized with signup.Normalize.
//
// body should be an http.MaxBytesReader: its limit answers 413, a read timeout
// 408, everything else 400.
func decodeSignup(body io.Reader) (signupRequest, *requestError) {
	var req signupRequest
	data, err := io.ReadAll(body)
	if err != nil {
		return req, bodyError(err, "reading the body: ")
	}
	if !utf8.Valid(data) { // json would replace the invalid bytes silently
		return req, &requestError{http.StatusBadRequest, "malformed JSON body: not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, bodyError(err, "malformed JSON body: ")
	}
	// One object only: trailing whitespace is fine, any other byte is not.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("a second JSON value follows it")
		}
		return req, bodyError(err, "malformed JSON body: trailing data after the JSON object: ")
	}
	email, name, err := signup.Normalize(req.Email, req.Name)
	if err != nil {
		return req, &requestError{http.StatusBadRequest, err.Error()}
	}
	return signupRequest{Email: email, Name: name}, nil
}

// bodyError classifies an error met while reading or decoding a body.
func bodyError(err error, prefix string) *requestError {
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooLarge):
		return &requestError{http.StatusRequestEntityTooLarge,
			fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit)}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &requestError{http.StatusRequestTimeout, "request body not received within the server's read timeout"}
	case errors.Is(err, io.EOF):
		return &requestError{http.StatusBadRequest, prefix + "empty body (want a JSON object)"}
	}
	return &requestError{http.StatusBadRequest, prefix + err.Error()}
}
