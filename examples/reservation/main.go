// Command reservation is a small seat-reservation service on FACTSTR: a
// seat must never be booked twice, however many people try at once.
//
//	go run ./examples/reservation reserve 12A ann          # against a node on 127.0.0.1:7400
//	go run ./examples/reservation show 12A
//	go run ./examples/reservation cancel 12A ann
//	go run ./examples/reservation race 12B 50               # 50 concurrent users, one winner
//	go run ./examples/reservation -db seats.db race 12B 50  # the same on an embedded bbolt file
//
// The logic is in reservation.go (Reserve, Cancel, Holder); it is written
// against contract.EventStore, so it runs unchanged on a cluster (client),
// an embedded file (boltstore) or in memory (memstore).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/factstr/factstr-go/boltstore"
	"github.com/factstr/factstr-go/client"
	"github.com/factstr/factstr-go/contract"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7400", "FACTSTR node gRPC addresses, comma-separated")
	db := flag.String("db", "", "use an embedded bbolt file instead of a cluster")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: reservation [-addr host:port,...] [-db file] reserve|cancel SEAT USER | show SEAT | race SEAT N\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *addr, *db, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "reservation:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, db string, args []string) error {
	if len(args) < 2 {
		flag.Usage()
		return errors.New("missing arguments")
	}
	var store contract.EventStore
	var err error
	if db != "" {
		store, err = boltstore.Open(db)
	} else {
		store, err = client.Dial(ctx, strings.Split(addr, ","))
	}
	if err != nil {
		return err
	}
	defer store.Close()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd, seat := args[0], args[1]
	switch {
	case cmd == "show" && len(args) == 2:
		holder, version, err := Holder(ctx, store, seat)
		if err != nil {
			return err
		}
		if holder == "" {
			holder = "nobody"
		}
		fmt.Printf("seat %s: held by %s (context version %d)\n", seat, holder, version)
		return nil
	case cmd == "reserve" && len(args) == 3:
		if err := Reserve(ctx, store, seat, args[2]); err != nil {
			return err
		}
		fmt.Printf("seat %s reserved for %s\n", seat, args[2])
		return nil
	case cmd == "cancel" && len(args) == 3:
		if err := Cancel(ctx, store, seat, args[2]); err != nil {
			return err
		}
		fmt.Printf("seat %s released by %s\n", seat, args[2])
		return nil
	case cmd == "race" && len(args) == 3:
		n, err := strconv.Atoi(args[2])
		if err != nil || n < 1 {
			return fmt.Errorf("race: %q is not a positive number of users", args[2])
		}
		return race(ctx, store, seat, n)
	}
	flag.Usage()
	return fmt.Errorf("unknown command %q", strings.Join(args, " "))
}

// race lets n users try to reserve seat at the same time.
func race(ctx context.Context, store contract.EventStore, seat string, n int) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = Reserve(ctx, store, seat, fmt.Sprintf("user-%02d", i)) })
	}
	wg.Wait()
	won, taken := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			fmt.Printf("user-%02d got seat %s\n", i, seat)
		case errors.Is(err, ErrSeatTaken):
			taken++
		default:
			return fmt.Errorf("user-%02d: %w", i, err)
		}
	}
	holder, version, err := Holder(ctx, store, seat)
	if err != nil {
		return err
	}
	fmt.Printf("%d users tried, %d succeeded, %d were told the seat is taken; holder %s, context version %d\n",
		n, won, taken, holder, version)
	return nil
}
