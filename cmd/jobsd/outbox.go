package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	jsql "github.com/jobsd/jobsd/sql"
)

var (
	statsOutboxSQL          = jsql.Statement("stats_outbox")
	statsOutboxExactSQL     = jsql.Statement("stats_outbox_exact")
	statsOutboxPublishedSQL = jsql.Statement("stats_outbox_published")
	outboxListSQL           = jsql.Statement("outbox_list")
	outboxStateSQL          = jsql.Statement("outbox_state")
	outboxReplaySQL         = jsql.Statement("outbox_replay")
	outboxReplayDeadSQL     = jsql.Statement("outbox_replay_dead")
)

// outboxStates are the values of outbox_event.state.
var outboxStates = []string{"pending", "published", "dead"}

func outboxCommand() *cli.Command {
	return &cli.Command{
		Name:  "outbox",
		Usage: "inspect the outbox (events on their way to RabbitMQ) and replay dead events",
		Subcommands: []*cli.Command{
			outboxStatsCommand(),
			outboxListCommand(),
			outboxReplayCommand(),
		},
	}
}

func outboxStatsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "pending, published and dead events, the age of the oldest pending one, per topic",
		UsageText: "jobsd outbox stats [--exact] [--json]",
		Description: "oldest_pending_age_seconds is the relay's lag: 0 when nothing is pending.\n\n" +
			"Pending and dead events are counted exactly. Published events are kept for\n" +
			"--outbox-retention and can be millions: by default their total is Postgres' estimate\n" +
			"(as of the last VACUUM or ANALYZE, shown as ~N) and no per-topic count, so that the\n" +
			"command answers at once; --exact counts them per topic, reading every row kept.\n\n" +
			"Examples:\n   jobsd outbox stats\n   jobsd outbox stats --exact\n   jobsd outbox stats --json | jq .oldest_pending_age_seconds",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "exact", Usage: "count published events exactly, per topic (reads every published row kept)"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			pool, err := openPool(c)
			if err != nil {
				return err
			}
			defer pool.Close()
			st, err := loadOutboxStats(c, pool, c.Bool("exact"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c, st)
			}
			fmt.Fprintf(c.App.Writer, "pending %d  published %s  dead %d  oldest pending %s\n",
				st.Pending, st.publishedText(), st.Dead, seconds(st.OldestPendingAgeSeconds))
			if len(st.Topics) == 0 {
				return nil
			}
			fmt.Fprintln(c.App.Writer)
			if !st.PublishedExact {
				t := newTable(c.App.Writer, "TOPIC", "PENDING", "DEAD", "OLDEST PENDING")
				for _, tp := range st.Topics {
					t.row(tp.Topic, fmt.Sprint(tp.Pending), fmt.Sprint(tp.Dead), seconds(tp.OldestPendingAgeSeconds))
				}
				return t.flush()
			}
			t := newTable(c.App.Writer, "TOPIC", "PENDING", "PUBLISHED", "DEAD", "OLDEST PENDING")
			for _, tp := range st.Topics {
				t.row(tp.Topic, fmt.Sprint(tp.Pending), fmt.Sprint(*tp.Published), fmt.Sprint(tp.Dead), seconds(tp.OldestPendingAgeSeconds))
			}
			return t.flush()
		},
	}
}

// outboxStats is the outbox's state: totals and per topic.
type outboxStats struct {
	Pending int64 `json:"pending"`
	// Published is exact with --exact, else Postgres' estimate.
	Published               int64        `json:"published"`
	PublishedExact          bool         `json:"published_exact"`
	Dead                    int64        `json:"dead"`
	OldestPendingAgeSeconds float64      `json:"oldest_pending_age_seconds"`
	Topics                  []topicStats `json:"topics"`
}

// publishedText is Published for humans: "~N" when estimated.
func (st *outboxStats) publishedText() string {
	if st.PublishedExact {
		return fmt.Sprint(st.Published)
	}
	return fmt.Sprintf("~%d", st.Published)
}

type topicStats struct {
	Topic   string `json:"topic"`
	Pending int64  `json:"pending"`
	// Published is absent unless counted exactly (--exact).
	Published               *int64  `json:"published,omitempty"`
	Dead                    int64   `json:"dead"`
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
}

// loadOutboxStats counts the outbox: pending and dead exactly, published
// exactly per topic when exact, else as Postgres' estimate of the total.
func loadOutboxStats(c *cli.Context, pool *pgxpool.Pool, exact bool) (*outboxStats, error) {
	query := statsOutboxSQL
	if exact {
		query = statsOutboxExactSQL
	}
	rows, err := pool.Query(c.Context, query)
	if err != nil {
		return nil, dbError("count outbox events", err)
	}
	topics, err := pgx.CollectRows(rows, pgx.RowToStructByPos[topicStats])
	if err != nil {
		return nil, dbError("count outbox events", err)
	}
	st := &outboxStats{Topics: topics, PublishedExact: exact}
	for _, tp := range topics {
		st.Pending += tp.Pending
		if tp.Published != nil {
			st.Published += *tp.Published
		}
		st.Dead += tp.Dead
		st.OldestPendingAgeSeconds = max(st.OldestPendingAgeSeconds, tp.OldestPendingAgeSeconds)
	}
	if !exact {
		if err := pool.QueryRow(c.Context, statsOutboxPublishedSQL).Scan(&st.Published); err != nil {
			return nil, dbError("estimate published outbox events", err)
		}
	}
	if st.Topics == nil {
		st.Topics = []topicStats{}
	}
	return st, nil
}

// seconds formats an age in seconds for humans.
func seconds(s float64) string {
	if s == 0 {
		return "-"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}

func outboxListCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list outbox events, newest first",
		UsageText: "jobsd outbox list [--state pending|published|dead] [--topic T] [--limit N] [--json]",
		Description: "--json includes each event's payload (as jsonb; null for a body that is not JSON), headers\n" +
			"and content type.\n\n" +
			"Examples:\n   jobsd outbox list --state dead\n   jobsd outbox list --topic user.signed_up --limit 5 --json",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "only events in this state: pending, published or dead"},
			&cli.StringFlag{Name: "topic", Usage: "only events of this topic"},
			limitFlag(),
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			var state, topic *string
			if c.IsSet("state") {
				s := c.String("state")
				if !slices.Contains(outboxStates, s) {
					return usagef("invalid --state %q (valid states: pending, published, dead)", s)
				}
				state = &s
			}
			if c.IsSet("topic") {
				s := c.String("topic")
				topic = &s
			}
			limit, err := parseLimit(c)
			if err != nil {
				return err
			}
			pool, err := openPool(c)
			if err != nil {
				return err
			}
			defer pool.Close()
			rows, err := pool.Query(c.Context, outboxListSQL, state, topic, limit)
			if err != nil {
				return dbError("list outbox events", err)
			}
			events, err := pgx.CollectRows(rows, pgx.RowToStructByPos[eventView])
			if err != nil {
				return dbError("list outbox events", err)
			}
			if events == nil {
				events = []eventView{}
			}
			if c.Bool("json") {
				return writeJSON(c, events)
			}
			if len(events) == 0 {
				fmt.Fprintln(c.App.Writer, "no events match")
				return nil
			}
			now := time.Now()
			t := newTable(c.App.Writer, "ID", "TOPIC", "KEY", "STATE", "ATTEMPT", "AGE", "LAST ERROR")
			for _, e := range events {
				t.row(fmt.Sprint(e.ID), e.Topic, e.Key, e.State, fmt.Sprint(e.Attempt), age(now, e.CreatedAt), e.LastError)
			}
			return t.flush()
		},
	}
}

// eventView is an outbox_event row (columns in outbox_list.sql's order).
type eventView struct {
	ID          int64           `json:"id"`
	MessageID   string          `json:"message_id"`
	Topic       string          `json:"topic"`
	Key         string          `json:"key"`
	State       string          `json:"state"`
	Attempt     int             `json:"attempt"`
	LastError   string          `json:"last_error"`
	CreatedAt   time.Time       `json:"created_at"`
	AvailableAt time.Time       `json:"available_at"`
	PublishedAt *time.Time      `json:"published_at"`
	Payload     json.RawMessage `json:"payload"`
	Headers     json.RawMessage `json:"headers"`
	ContentType string          `json:"content_type"`
}

func outboxReplayCommand() *cli.Command {
	return &cli.Command{
		Name:  "replay",
		Usage: "make dead events pending again, so that the relay publishes them",
		UsageText: "jobsd outbox replay --id N [--json]\n" +
			"   jobsd outbox replay --all-dead [--topic T] [--dry-run] [--json]",
		Description: "A dead event exhausted its publish attempts. Replay sets it pending with attempt 0,\n" +
			"available now, and no relay lease; its last error stays for the record. Only dead events are\n" +
			"replayed: a pending or published one is left alone (exit 1), an unknown id exits 1.\n\n" +
			"Examples:\n   jobsd outbox replay --id 7\n   jobsd outbox replay --all-dead --topic user.signed_up --dry-run",
		Flags: []cli.Flag{
			idFlag("the dead event to replay (outbox_event.id)"),
			&cli.BoolFlag{Name: "all-dead", Usage: "replay every dead event"},
			&cli.StringFlag{Name: "topic", Usage: "with --all-dead: only events of this topic"},
			&cli.BoolFlag{Name: "dry-run", Usage: "with --all-dead: print what would be replayed, change nothing"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			all := c.Bool("all-dead")
			switch {
			case c.IsSet("id") && all:
				return usagef("use either --id or --all-dead (see 'jobsd outbox replay --help')")
			case !all && (c.IsSet("topic") || c.IsSet("dry-run")):
				return usagef("--topic and --dry-run go with --all-dead (see 'jobsd outbox replay --help')")
			case all:
				return replayAllDead(c)
			case !c.IsSet("id"):
				return usagef("missing --id or --all-dead (see 'jobsd outbox replay --help')")
			}
			id, err := parseID(c)
			if err != nil {
				return err
			}
			pool, err := openPool(c)
			if err != nil {
				return err
			}
			defer pool.Close()
			var state string
			err = pgx.BeginFunc(c.Context, pool, func(tx pgx.Tx) error {
				if err := tx.QueryRow(c.Context, outboxStateSQL, id).Scan(&state); err != nil {
					return err
				}
				if state != "dead" {
					return nil
				}
				_, err := tx.Exec(c.Context, outboxReplaySQL, id)
				return err
			})
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("event %d not found", id)
			case err != nil:
				return dbError(fmt.Sprintf("replay event %d", id), err)
			case state == "pending":
				return fmt.Errorf("event %d is pending, not dead: the relay is still trying to publish it; only dead events are replayed", id)
			case state != "dead":
				return fmt.Errorf("event %d is %s, not dead; only dead events are replayed", id, state)
			}
			if c.Bool("json") {
				return writeJSON(c, map[string]any{"id": id, "previous_state": "dead", "state": "pending"})
			}
			fmt.Fprintf(c.App.Writer, "event %d: dead -> pending\n", id)
			return nil
		},
	}
}

func replayAllDead(c *cli.Context) error {
	var topic *string
	if c.IsSet("topic") {
		s := c.String("topic")
		topic = &s
	}
	pool, err := openPool(c)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := pool.Query(c.Context, outboxReplayDeadSQL, topic, c.Bool("dry-run"))
	if err != nil {
		return dbError("replay dead events", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return dbError("replay dead events", err)
	}
	res := bulkResult{DryRun: c.Bool("dry-run"), IDs: ids}
	return res.write(c, "replayed", "would replay", "dead event", "dead events")
}
