package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// errHelp ends a command that printed its help on request: exit status 0.
var errHelp = errors.New("help requested")

// usageError is a command line the command refuses before doing anything:
// one line on stderr, exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// newFlagSet returns a flag set whose flags fall back to FACTSTR_<NAME>
// environment variables (dashes become underscores). synopsis is the
// command line after "factstr-node", positional arguments included; about,
// when not empty, is printed between the synopsis and the flags.
func newFlagSet(name, synopsis string, about ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: factstr-node %s\n", synopsis)
		for _, a := range about {
			fmt.Fprintf(w, "\n%s\n", strings.TrimRight(a, "\n"))
		}
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprint(w, "\nFlags (each also FACTSTR_<NAME>):\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args, then fills every flag not given on the command line
// from its environment variable. Flags may come before or after positional
// arguments (`admin remove n5 --addr X` works like `admin remove --addr X
// n5`); fs.Args() returns the positionals.
//
// -h/--help prints the usage on stdout and returns errHelp; any other
// parse error becomes one usageError line that names the flag and, for an
// unknown one, the closest defined flag. The flag package's own 40-line
// usage dump on errors is suppressed.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(os.Stdout)
				fs.Usage()
				return errHelp
			}
			return flagError(fs, err)
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
	fs.SetOutput(os.Stderr)
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
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = usagef("%s=%q: %v", env, v, e)
			}
		}
	})
	return err
}

func envName(flagName string) string {
	return "FACTSTR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagError turns the flag package's error into one line.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	help := fmt.Sprintf("'factstr-node %s --help' lists the flags", fs.Name())
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		if s := closestFlag(fs, name); s != "" {
			return usagef("unknown flag --%s; did you mean --%s? (%s)", name, s, help)
		}
		return usagef("unknown flag --%s (%s)", name, help)
	}
	// "invalid value ... for flag -x: ...", "flag needs an argument: -x":
	// the double dash is the spelling every help text uses.
	msg = strings.ReplaceAll(msg, "flag -", "flag --")
	msg = strings.ReplaceAll(msg, "argument: -", "argument: --")
	return usagef("%s (%s)", msg, help)
}

// closestFlag returns the defined flag nearest to name (edit distance at
// most a third of its length, at least 2), or a flag name has as a prefix,
// or "".
func closestFlag(fs *flag.FlagSet, name string) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return closest(name, names)
}

func closest(name string, candidates []string) string {
	best, bestD := "", max(2, len(name)/3)+1
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		for _, c := range candidates {
			if len(name) >= 3 && strings.HasPrefix(c, name) {
				return c
			}
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
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

// objectList is a repeatable flag whose every value must be a JSON object
// (a payload predicate): anything else would match nothing without a word.
type objectList []json.RawMessage

func (l *objectList) String() string { return "" }
func (l *objectList) Set(v string) error {
	if err := checkObject(v); err != nil {
		return err
	}
	*l = append(*l, json.RawMessage(v))
	return nil
}

func checkObject(v string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &obj); err != nil || obj == nil {
		return errors.New("want a JSON object such as '{\"seat\":\"12A\"}' (a payload predicate matches payloads that contain it)")
	}
	return nil
}

// versionFlag is an optional non-negative version: --if-version N.
type versionFlag struct {
	v   uint64
	set bool
}

func (f *versionFlag) String() string {
	if !f.set {
		return ""
	}
	return fmt.Sprint(f.v)
}

func (f *versionFlag) Set(s string) error {
	if strings.HasPrefix(strings.TrimSpace(s), "-") {
		return errors.New("a context version is 0 or more (0: no matching fact yet)")
	}
	var v uint64
	if _, err := fmt.Sscan(s, &v); err != nil || fmt.Sprint(v) != strings.TrimSpace(s) {
		return errors.New("want a whole number 0 or more")
	}
	f.v, f.set = v, true
	return nil
}

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
	_, ok := os.LookupEnv(envName(name))
	return ok
}
