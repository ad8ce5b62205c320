package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
)

// parkedFlags are the flags of admin streams parked, replay-parked and
// drop-parked.
type parkedFlags struct {
	after, upTo uint64
	limit       int
}

func (f *parkedFlags) registerParked(fs *flag.FlagSet, sub string) {
	switch sub {
	case "parked":
		fs.Uint64Var(&f.after, "after", 0, "only parked events after this sequence number (the next page)")
		fs.IntVar(&f.limit, "limit", contract.DefaultParkedPage, fmt.Sprintf("at most this many events (at most %d)", contract.MaxParkedPage))
	case "replay-parked":
		fs.Uint64Var(&f.upTo, "up-to", 0, "only the parked events up to this sequence number (0: all)")
	case "drop-parked":
		fs.Uint64Var(&f.upTo, "up-to", 0, "only the parked events up to this sequence number (0: all)")
	}
}

func isParkedCommand(sub string) bool {
	return sub == "parked" || sub == "replay-parked" || sub == "drop-parked"
}

type parkedJSON struct {
	SequenceNumber uint64          `json:"sequence_number"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	Attempts       int             `json:"attempts"`
	LastError      string          `json:"last_error"`
	ParkedAt       string          `json:"parked_at,omitempty"`
	Redeliver      bool            `json:"redeliver"`
}

func runParked(ctx context.Context, out io.Writer, c *client.Client, sub, name string, f *streamFlags) error {
	switch sub {
	case "parked":
		if f.limit < 1 || f.limit > contract.MaxParkedPage {
			return usagef("--limit %d: want 1 to %d", f.limit, contract.MaxParkedPage)
		}
		ps, err := c.ListParked(ctx, name, f.after, f.limit)
		if err != nil {
			return err
		}
		if f.json {
			all := make([]parkedJSON, len(ps))
			for i, p := range ps {
				all[i] = parkedJSON{SequenceNumber: p.Event.SequenceNumber, Type: p.Event.Type, Payload: p.Event.Payload,
					Attempts: p.Attempts, LastError: p.LastError, ParkedAt: rfc3339(p.ParkedAt), Redeliver: p.Redeliver}
			}
			return json.NewEncoder(out).Encode(map[string]any{"name": name, "parked": all})
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTYPE\tATTEMPTS\tPARKED AT\tREPLAY\tLAST ERROR")
		for _, p := range ps {
			replay := "-"
			if p.Redeliver {
				replay = "asked"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", p.Event.SequenceNumber, p.Event.Type, p.Attempts, orNever(p.ParkedAt), replay, singleLine(p.LastError))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(ps) == f.limit {
			fmt.Fprintf(out, "(more may follow: --after %d)\n", ps[len(ps)-1].Event.SequenceNumber)
		}
		return nil
	case "replay-parked":
		n, err := c.RedeliverParked(ctx, name, f.upTo)
		if err != nil {
			return err
		}
		if f.json {
			return json.NewEncoder(out).Encode(map[string]any{"name": name, "redeliver": n})
		}
		fmt.Fprintf(out, "%d parked events of %s will be delivered again to its subscriber\n", n, name)
		return nil
	default: // drop-parked
		n, err := c.DropParked(ctx, name, f.upTo)
		if err != nil {
			return err
		}
		if f.json {
			return json.NewEncoder(out).Encode(map[string]any{"name": name, "dropped": n})
		}
		fmt.Fprintf(out, "dropped %d parked events of %s\n", n, name)
		return nil
	}
}

// oneLine keeps a handler's error on one table row.
func singleLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
