package outbox

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits of Postgres numeric, which jsonb uses for every JSON number: at most
// 131072 digits before the decimal point and 16383 after it, and an exponent
// below INT_MAX/2 in absolute value (even for zero). Checked against a real
// server by TestJSONBNumberBoundaries.
const (
	numericMaxIntDigits   = 131072
	numericMaxScale       = 16383
	numericMaxAbsExponent = 1<<30 - 1 // INT_MAX/2: 1073741823
)

// jsonbTextSize checks that Postgres jsonb accepts data, which must already be
// valid JSON (json.Valid) and valid UTF-8, and returns the length in bytes of
// jsonb's text form of it: what Postgres stores and the relay publishes.
// Postgres normalises the text: whitespace, ", " and ": " separators, numbers
// (1e3 is 1000), string escapes (\u00e9 is é) and duplicate object keys (the
// last one wins).
//
// jsonb refuses what encoding/json accepts: \u0000, lone or misordered UTF-16
// surrogates in \u escapes, and numbers out of numeric's range.
func jsonbTextSize(data []byte) (int, error) {
	s := jsonbScanner{data: data}
	return s.value()
}

type jsonbScanner struct {
	data []byte
	pos  int
}

func (s *jsonbScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *jsonbScanner) value() (int, error) {
	s.skipSpace()
	switch s.data[s.pos] {
	case '{':
		return s.object()
	case '[':
		return s.array()
	case '"':
		_, n, err := s.str(false)
		return n, err
	case 't', 'n':
		s.pos += 4
		return 4, nil
	case 'f':
		s.pos += 5
		return 5, nil
	default:
		return s.number()
	}
}

// object: {"a": 1, "b": 2}; duplicate keys keep the last value.
func (s *jsonbScanner) object() (int, error) {
	s.pos++ // {
	s.skipSpace()
	if s.data[s.pos] == '}' {
		s.pos++
		return 2, nil
	}
	entries := map[string]int{}
	for {
		s.skipSpace()
		key, keyLen, err := s.str(true)
		if err != nil {
			return 0, err
		}
		s.skipSpace()
		s.pos++ // :
		n, err := s.value()
		if err != nil {
			return 0, err
		}
		entries[key] = keyLen + len(": ") + n
		s.skipSpace()
		c := s.data[s.pos]
		s.pos++
		if c == '}' {
			break
		}
	}
	size := len("{}") + len(", ")*(len(entries)-1)
	for _, n := range entries {
		size += n
	}
	return size, nil
}

// array: [1, 2].
func (s *jsonbScanner) array() (int, error) {
	s.pos++ // [
	s.skipSpace()
	if s.data[s.pos] == ']' {
		s.pos++
		return 2, nil
	}
	size := len("[]")
	for first := true; ; first = false {
		n, err := s.value()
		if err != nil {
			return 0, err
		}
		size += n
		if !first {
			size += len(", ")
		}
		s.skipSpace()
		c := s.data[s.pos]
		s.pos++
		if c == ']' {
			return size, nil
		}
	}
}

// str decodes the string at s.pos as jsonb does and returns it (when keep is
// set) and the length of its text form, quotes and escapes included.
func (s *jsonbScanner) str(keep bool) (string, int, error) {
	s.pos++ // "
	var decoded []byte
	size := len(`""`)
	add := func(r rune) {
		size += escapedLen(r)
		if keep {
			decoded = utf8.AppendRune(decoded, r)
		}
	}
	highSurrogate := rune(-1)
	for {
		c := s.data[s.pos]
		if c == '"' {
			s.pos++
			break
		}
		if c != '\\' || s.data[s.pos+1] != 'u' {
			if highSurrogate >= 0 {
				return "", 0, errors.New(`a \u escape of a high surrogate is not followed by a low surrogate`)
			}
			if c != '\\' {
				r, n := utf8.DecodeRune(s.data[s.pos:])
				add(r)
				s.pos += n
				continue
			}
			add(unescape(s.data[s.pos+1]))
			s.pos += 2
			continue
		}
		r := hex4(s.data[s.pos+2 : s.pos+6])
		s.pos += 6
		switch {
		case r >= 0xd800 && r <= 0xdbff:
			if highSurrogate >= 0 {
				return "", 0, errors.New(`a \u escape of a high surrogate follows another high surrogate`)
			}
			highSurrogate = r
			continue
		case r >= 0xdc00 && r <= 0xdfff:
			if highSurrogate < 0 {
				return "", 0, errors.New(`a \u escape of a low surrogate does not follow a high surrogate`)
			}
			r = 0x10000 + (highSurrogate-0xd800)<<10 + (r - 0xdc00)
			highSurrogate = -1
		case highSurrogate >= 0:
			return "", 0, errors.New(`a \u escape of a high surrogate is not followed by a low surrogate`)
		}
		if r == 0 {
			return "", 0, errors.New(`\u0000 cannot be stored by Postgres jsonb`)
		}
		add(r)
	}
	if highSurrogate >= 0 {
		return "", 0, errors.New(`a \u escape of a high surrogate ends a string`)
	}
	return string(decoded), size, nil
}

// escapedLen is the length of r in Postgres' JSON text output (escape_json).
func escapedLen(r rune) int {
	switch {
	case r == '"', r == '\\', r == '\b', r == '\f', r == '\n', r == '\r', r == '\t':
		return 2
	case r < 0x20:
		return len(`\u0000`)
	}
	return utf8.RuneLen(r)
}

// escapedStringLen is the length of s as a JSON string in Postgres' text
// output, quotes included; s is valid UTF-8.
func escapedStringLen(s string) int {
	n := len(`""`)
	for _, r := range s {
		n += escapedLen(r)
	}
	return n
}

// unescape returns the character of the JSON escape \c (other than \u).
func unescape(c byte) rune {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return rune(c) // " \ /
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// number checks a JSON number against numeric's range and returns the length
// of numeric's text output of it (no exponent: 1e3 is 1000, 0.0 stays 0.0).
func (s *jsonbScanner) number() (int, error) {
	start := s.pos
	digits := func() []byte {
		from := s.pos
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
		}
		return s.data[from:s.pos]
	}
	negative := s.data[s.pos] == '-'
	if negative {
		s.pos++
	}
	intPart := digits()
	var frac []byte
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		frac = digits()
	}
	exp := 0
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		expNegative := s.data[s.pos] == '-'
		if s.data[s.pos] == '-' || s.data[s.pos] == '+' {
			s.pos++
		}
		for _, d := range digits() {
			exp = exp*10 + int(d-'0')
			if exp >= numericMaxAbsExponent {
				return 0, outOfRange(s.data[start:s.pos])
			}
		}
		if expNegative {
			exp = -exp
		}
	}
	scale := max(len(frac)-exp, 0)
	if scale > numericMaxScale {
		return 0, outOfRange(s.data[start:s.pos])
	}
	size := 0
	if scale > 0 {
		size = 1 + scale // the point and the fraction
	}
	firstNonZero := -1
	for i, d := range append(intPart[:len(intPart):len(intPart)], frac...) {
		if d != '0' {
			firstNonZero = i
			break
		}
	}
	if firstNonZero < 0 { // zero, printed without sign
		return size + 1, nil
	}
	weight := len(intPart) - 1 - firstNonZero + exp // decimal exponent of the first digit
	if weight >= numericMaxIntDigits {
		return 0, outOfRange(s.data[start:s.pos])
	}
	size += max(weight+1, 1)
	if negative {
		size++
	}
	return size, nil
}

func outOfRange(number []byte) error {
	if len(number) > 40 {
		return fmt.Errorf("number %s... is out of the range of Postgres numeric (131072 digits before the point, 16383 after)", number[:40])
	}
	return fmt.Errorf("number %s is out of the range of Postgres numeric (131072 digits before the point, 16383 after)", number)
}
