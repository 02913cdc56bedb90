package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jobsd/jobsd/internal/testdb"
	"github.com/jobsd/jobsd/outbox"
)

// FuzzJSONB compares Go's reckoning of jsonb with Postgres on JSON built from
// the fuzzer's bytes (so that every input is valid JSON, rich in what jsonb
// treats specially: \u escapes and surrogates, numbers at numeric's limits,
// duplicate keys): Postgres accepts exactly what Go accepts, and stores text of
// the length Go computed.
func FuzzJSONB(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte("surrogates and numbers: \xd8\x00\xdc\x00 1e131071"))
	db := testdb.New(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		g := jsonGen{data: data}
		doc := g.value(0)
		if !json.Valid([]byte(doc)) {
			t.Fatalf("generated invalid JSON %q", doc)
		}
		size, goErr := outbox.JSONBTextSize([]byte(doc))
		var stored int
		pgErr := db.Pool.QueryRow(ctx, "SELECT octet_length($1::jsonb::text)", doc).Scan(&stored)
		if (goErr == nil) != (pgErr == nil) {
			t.Fatalf("%.200q: Go %v, Postgres %v", doc, goErr, pgErr)
		}
		if goErr == nil && size != stored {
			t.Fatalf("%.200q: Go reckons %d bytes, Postgres stored %d", doc, size, stored)
		}
	})
}

// jsonGen builds a JSON document from bytes; it reads 0 once they run out.
type jsonGen struct {
	data []byte
	pos  int
}

func (g *jsonGen) next() int {
	if g.pos >= len(g.data) {
		return 0
	}
	g.pos++
	return int(g.data[g.pos-1])
}

func (g *jsonGen) value(depth int) string {
	switch c := g.next() % 8; {
	case c == 0 && depth < 5:
		n := g.next() % 4
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(g.str() + ":" + g.value(depth+1))
		}
		return b.String() + "}"
	case c == 1 && depth < 5:
		n := g.next() % 4
		parts := make([]string, n)
		for i := range parts {
			parts[i] = g.value(depth + 1)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case c == 2, c == 3:
		return g.str()
	case c == 4:
		return []string{"true", "false", "null"}[g.next()%3]
	default:
		return g.number()
	}
}

var (
	escapes   = []uint16{0, 0x1, 0x1f, 0x22, 0x2f, 0x5c, 0x41, 0xe9, 0x7f, 0xfffe, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xd83d, 0xde00}
	exponents = []int{0, 1, -1, 3, -3, 16383, -16383, 16384, -16384, 131071, 131072, 131068, -16380, 1073741822, 1073741823, -1073741823, 99}
)

func (g *jsonGen) str() string {
	var b strings.Builder
	b.WriteString(`"`)
	for range g.next() % 6 {
		switch c := g.next() % 6; c {
		case 0:
			fmt.Fprintf(&b, `\u%04x`, escapes[g.next()%len(escapes)])
		case 1:
			b.WriteString([]string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`}[g.next()%8])
		case 2:
			b.WriteString([]string{"é", "☕", "😀", "\u007f", "a", "<&>"}[g.next()%6])
		default:
			b.WriteByte(byte('a' + g.next()%3)) // few letters: duplicate keys
		}
	}
	return b.String() + `"`
}

func (g *jsonGen) number() string {
	var b strings.Builder
	if g.next()%2 == 0 {
		b.WriteString("-")
	}
	intDigits := g.next() % 4
	if intDigits == 0 {
		b.WriteString("0")
	} else {
		b.WriteString(fmt.Sprint(1 + g.next()%9))
		b.WriteString(strings.Repeat(fmt.Sprint(g.next()%10), intDigits-1))
	}
	if frac := g.next() % 5; frac > 0 {
		b.WriteString("." + strings.Repeat(fmt.Sprint(g.next()%10), frac))
	}
	if g.next()%2 == 0 {
		exp := exponents[g.next()%len(exponents)] + g.next()%5 - 2
		b.WriteString([]string{"e", "E"}[g.next()%2] + fmt.Sprint(exp))
	}
	return b.String()
}
