// Command ledger is a projection of account balances run as a consumer
// group: several members share the work, each account's postings are
// applied in order by one member at a time, and a member that stops hands
// its accounts to the others.
//
//	go run ./examples/ledger -db ledger.db demo 3 500   # 3 members, 500 postings, embedded bbolt file
//	go run ./examples/ledger demo 3 500                 # the same against a node on 127.0.0.1:7400
//
// While it runs, `factstr-node admin streams show ledger-balances` shows
// the group's partitions, their cursors and which member holds each.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7400", "FACTSTR node gRPC addresses, comma-separated")
	db := flag.String("db", "", "use an embedded bbolt file instead of a cluster")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: ledger [-addr host:port,...] [-db file] demo MEMBERS POSTINGS\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *addr, *db, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "ledger:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, db string, args []string) error {
	if len(args) != 3 || args[0] != "demo" {
		flag.Usage()
		return fmt.Errorf("want: demo MEMBERS POSTINGS")
	}
	members, err := strconv.Atoi(args[1])
	if err != nil || members < 1 {
		return fmt.Errorf("MEMBERS %q: want a positive number", args[1])
	}
	postings, err := strconv.Atoi(args[2])
	if err != nil || postings < 1 {
		return fmt.Errorf("POSTINGS %q: want a positive number", args[2])
	}
	var s contract.EventStore
	if db != "" {
		s, err = boltstore.Open(db)
	} else {
		s, err = client.Dial(ctx, strings.Split(addr, ","))
	}
	if err != nil {
		return err
	}
	defer s.Close()
	return demo(ctx, s, members, postings, os.Stdout)
}

// demo runs members members, posts postings random amounts to ten
// accounts, stops the first member halfway, and prints the balances once
// the projection has caught up with what was posted.
func demo(ctx context.Context, s contract.EventStore, members, postings int, out io.Writer) error {
	b := NewBalances()
	subs := make([]contract.Subscription, members)
	for i := range subs {
		sub, err := RunMember(ctx, s, b)
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		subs[i] = sub
		defer sub.Unsubscribe()
	}
	want := map[string]int64{}
	for i := range postings {
		acc := fmt.Sprintf("acc-%02d", rand.IntN(10))
		amount := rand.Int64N(200) - 50
		if err := Post(ctx, s, acc, amount); err != nil {
			return err
		}
		want[acc] += amount
		if i == postings/2 && members > 1 {
			subs[0].Unsubscribe() // its partitions go to the others
			fmt.Fprintln(out, "member 0 left; the others took its accounts")
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if got := b.Snapshot(); fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the projection did not catch up within 30s")
		}
		time.Sleep(50 * time.Millisecond) // polling a read model, as a dashboard would
	}
	accounts := make([]string, 0, len(want))
	for a := range want {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	for _, a := range accounts {
		fmt.Fprintf(out, "%s %6d\n", a, b.Balance(a))
	}
	fmt.Fprintf(out, "%d postings applied by %d members (%d redelivered and skipped)\n", postings, members, b.Redelivered)
	return nil
}
