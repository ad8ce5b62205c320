package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/streams"
)

const streamsUsage = `Usage: factstr-node admin streams <command> [args] [flags]

  list                          every durable stream name: cursor, head, lag, holder, last ack, query
  show <name>                   one durable stream name in full
  reset <name> --to N|end|beginning [--force]
                                move its cursor (a held name only with --force: its holder loses it)
  delete <name> [--force]       forget the name and its cursor (a held name only with --force)
  parked <name> [--after N] [--limit N]
                                the name's parked events (retry then park): sequence, type, attempts, last error
  replay-parked <name> [--up-to N]
                                deliver the parked events (up to N) again to the name's subscriber
  drop-parked <name> [--up-to N]
                                forget the parked events (up to N)

list, show and parked need the reader role, the others the admin role. Every
command takes --addr and --json; 'factstr-node admin streams <command> --help'
lists its flags.
`

// streamCommands are the admin streams subcommands, for help and completion.
var streamCommands = []struct{ name, args, about string }{
	{"list", "", "Every durable stream name with its cursor, the head, its lag in events, its holder, when its cursor\nlast moved and its query."},
	{"show", "<name>", "One durable stream name in full."},
	{"reset", "<name> --to N|end|beginning", "Move the name's cursor: after sequence number N, to the end of the log, or to the beginning.\nA held name is refused unless --force; then its holder loses the name."},
	{"delete", "<name>", "Forget the name and its cursor; the next subscription creates it anew, with any query.\nA held name is refused unless --force; then its holder loses the name."},
	{"parked", "<name>", "The name's parked events, in sequence order: the events its handler failed on on every delivery\nits failure policy (retry N then park) allowed."},
	{"replay-parked", "<name>", "Deliver the name's parked events again to its subscriber (now, or the next one), flagged as a\nredelivery; handled, they leave the parked list, failed again, they are parked again."},
	{"drop-parked", "<name>", "Forget the name's parked events."},
}

type streamFlags struct {
	clientFlags
	to    string
	force bool
	parkedFlags
}

func streamsFlagSet(f *streamFlags, sub string) *flag.FlagSet {
	for _, c := range streamCommands {
		if c.name != sub {
			continue
		}
		fs := newFlagSet("admin streams "+sub, strings.TrimSpace("admin streams "+sub+" "+c.args)+" [--addr host:port,...] [--json]", c.about)
		f.register(fs)
		switch sub {
		case "reset":
			fs.StringVar(&f.to, "to", "", "where the cursor goes: a sequence number N (events after N are delivered next), end, or beginning")
			fs.BoolVar(&f.force, "force", false, "reset a held name: its holder loses it")
		case "delete":
			fs.BoolVar(&f.force, "force", false, "delete a held name: its holder loses it")
		default:
			f.registerParked(fs, sub)
		}
		return fs
	}
	return nil
}

// parseTo reads --to: N, end or beginning.
func parseTo(s string) (contract.StartPosition, error) {
	if s == "" {
		return contract.StartPosition{}, usagef("reset needs --to N, --to end or --to beginning")
	}
	p, err := contract.ParseStartPosition(s)
	if err != nil {
		return contract.StartPosition{}, usagef("--to %q is not a sequence number, end or beginning", s)
	}
	return p, nil
}

func adminStreams(ctx context.Context, args []string) error {
	return runStreams(ctx, os.Stdout, args)
}

func runStreams(ctx context.Context, out io.Writer, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, streamsUsage)
		return usagef("admin streams needs a command (list, show, reset, delete, parked, replay-parked, drop-parked)")
	}
	sub, args := args[0], args[1:]
	if isHelp(sub) {
		fmt.Fprint(out, streamsUsage)
		return errHelp
	}
	var f streamFlags
	fs := streamsFlagSet(&f, sub)
	if fs == nil {
		names := make([]string, len(streamCommands))
		for i, c := range streamCommands {
			names[i] = c.name
		}
		msg := fmt.Sprintf("unknown admin streams command %q", sub)
		if s := closest(sub, names); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		}
		return usagef("%s ('factstr-node admin streams --help' lists them)", msg)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	pos := fs.Args()
	switch {
	case sub == "list" && len(pos) > 0:
		return usagef("list takes no arguments (got %q)", pos[0])
	case sub != "list" && len(pos) != 1:
		return usagef("%s takes one durable stream name", sub)
	}
	var to contract.StartPosition
	if sub == "reset" {
		var err error
		if to, err = parseTo(f.to); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	c, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if isParkedCommand(sub) {
		return runParked(ctx, out, c, sub, pos[0], &f)
	}
	switch sub {
	case "list":
		infos, err := c.ListDurable(ctx)
		if err != nil {
			return err
		}
		if f.json {
			all := make([]durableJSON, len(infos))
			for i, info := range infos {
				all[i] = toDurableJSON(info)
			}
			return json.NewEncoder(out).Encode(map[string]any{"streams": all})
		}
		printDurables(out, infos)
		return nil
	case "show":
		info, err := c.GetDurable(ctx, pos[0])
		if err != nil {
			return err
		}
		return printDurable(out, info, f.json)
	case "reset":
		info, err := c.ResetDurable(ctx, pos[0], to, f.force)
		if err != nil {
			return err
		}
		if !f.json {
			fmt.Fprintf(out, "reset %s: its next subscription delivers what follows sequence %d\n", info.Name, info.Cursor)
		}
		return printDurable(out, info, f.json)
	default: // delete
		if err := c.DeleteDurable(ctx, pos[0], f.force); err != nil {
			return err
		}
		if f.json {
			return json.NewEncoder(out).Encode(map[string]any{"deleted": pos[0]})
		}
		fmt.Fprintf(out, "deleted %s; its next subscription creates it anew\n", pos[0])
		return nil
	}
}

type durableJSON struct {
	Name       string     `json:"name"`
	Query      string     `json:"query"`
	Start      string     `json:"start"`
	Cursor     uint64     `json:"cursor"`
	Head       uint64     `json:"head"`
	LagEvents  uint64     `json:"lag_events"`
	LagSeconds float64    `json:"lag_seconds"`
	Holder     string     `json:"holder"`
	CreatedAt  string     `json:"created_at,omitempty"`
	LastAckAt  string     `json:"last_ack_at,omitempty"`
	Failure    string     `json:"failure_policy"`
	Parked     uint64     `json:"parked"`
	Group      *groupJSON `json:"group,omitempty"`
}

type groupJSON struct {
	Key        string          `json:"key"`
	Partitions []partitionJSON `json:"partitions"`
	Members    []string        `json:"members"`
}

type partitionJSON struct {
	Index     int    `json:"index"`
	Cursor    uint64 `json:"cursor"`
	LagEvents uint64 `json:"lag_events"`
	Holder    string `json:"holder"`
	LastAckAt string `json:"last_ack_at,omitempty"`
	Failure   string `json:"failure_policy"`
	Parked    uint64 `json:"parked"`
}

func toDurableJSON(d contract.DurableInfo) durableJSON {
	j := durableJSON{Name: d.Name, Query: streams.FormatQuery(d.Query), Start: d.Start.String(), Cursor: d.Cursor,
		Head: d.Head, LagEvents: d.Lag, LagSeconds: d.LagTime.Seconds(), Holder: d.Holder, CreatedAt: rfc3339(d.Created), LastAckAt: rfc3339(d.LastAck),
		Failure: d.Failure.String(), Parked: d.Parked}
	if g := d.Group; g != nil {
		j.Group = &groupJSON{Key: g.Spec.Key.String(), Members: append([]string{}, g.Members...), Partitions: []partitionJSON{}}
		for _, p := range g.Partitions {
			j.Group.Partitions = append(j.Group.Partitions, partitionJSON{Index: p.Index, Cursor: p.Cursor, LagEvents: p.Lag,
				Holder: p.Holder, LastAckAt: rfc3339(p.LastAck)})
		}
	}
	return j
}

// holderColumn is a name's holder, or for a consumer group its member count.
func holderColumn(d contract.DurableInfo) string {
	if d.Group != nil {
		return fmt.Sprintf("(group, %d members)", len(d.Group.Members))
	}
	return orFree(d.Holder)
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func printDurables(w io.Writer, infos []contract.DurableInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCURSOR\tHEAD\tLAG\tLAG TIME\tPARKED\tHOLDER\tLAST ACK\tQUERY")
	for _, d := range infos {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", d.Name, d.Cursor, d.Head, d.Lag, lagTime(d.LagTime), d.Parked, holderColumn(d), orNever(d.LastAck), streams.FormatQuery(d.Query))
	}
	tw.Flush()
}

func printDurable(w io.Writer, d contract.DurableInfo, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(toDurableJSON(d))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name\t%s\n", d.Name)
	fmt.Fprintf(tw, "query\t%s\n", streams.FormatQuery(d.Query))
	fmt.Fprintf(tw, "start\t%s\n", d.Start)
	fmt.Fprintf(tw, "cursor\t%d\n", d.Cursor)
	fmt.Fprintf(tw, "head\t%d\n", d.Head)
	fmt.Fprintf(tw, "lag\t%d events, %s\n", d.Lag, lagTime(d.LagTime))
	fmt.Fprintf(tw, "holder\t%s\n", orFree(d.Holder))
	fmt.Fprintf(tw, "created\t%s\n", orNever(d.Created))
	fmt.Fprintf(tw, "last ack\t%s\n", orNever(d.LastAck))
	fmt.Fprintf(tw, "on failure\t%s\n", d.Failure)
	fmt.Fprintf(tw, "parked\t%d events\n", d.Parked)
	if g := d.Group; g != nil {
		fmt.Fprintf(tw, "group\tby %s, %d partitions, %d members\n", g.Spec.Key, g.Spec.Partitions, len(g.Members))
		for _, m := range g.Members {
			fmt.Fprintf(tw, "member\t%s\n", m)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
		pw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(pw, "PARTITION\tCURSOR\tLAG\tHOLDER\tLAST ACK")
		for _, p := range g.Partitions {
			fmt.Fprintf(pw, "%d\t%d\t%d\t%s\t%s\n", p.Index, p.Cursor, p.Lag, orFree(p.Holder), orNever(p.LastAck))
		}
		return pw.Flush()
	}
	return tw.Flush()
}

// lagTime prints a durable name's lag in time: to the millisecond below a
// second, to the tenth of a second above.
func lagTime(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func orFree(holder string) string {
	if holder == "" {
		return "(free)"
	}
	return holder
}

func orNever(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
