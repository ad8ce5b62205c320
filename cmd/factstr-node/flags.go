package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

var errUsage = errors.New("usage")

// newFlagSet returns a flag set whose flags fall back to FACTSTR_<NAME>
// environment variables (dashes become underscores).
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: factstr-node %s\n\nFlags (each also FACTSTR_<NAME>):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, then fills every flag not given on the command line
// from its environment variable. Flags may come before or after positional
// arguments (`admin remove n5 --addr X` works like `admin remove --addr X
// n5`); fs.Args() returns the positionals.
func parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			positional = append(positional, rest[1:]...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if len(positional) > 0 {
		// Leave the positionals where fs.Args() finds them.
		_ = fs.Parse(append([]string{"--"}, positional...))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "FACTSTR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// listFlag is a repeatable (and comma-separated) string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// rawList is a repeatable flag that keeps each value whole (JSON payloads
// contain commas).
type rawList []string

func (l *rawList) String() string     { return strings.Join(*l, " ") }
func (l *rawList) Set(v string) error { *l = append(*l, v); return nil }

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// flagGiven reports whether name was set on the command line or through its
// environment variable.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	if given {
		return true
	}
	_, ok := os.LookupEnv("FACTSTR_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
	return ok
}
