package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// wireSettings is Settings on the control endpoint, durations as Go
// duration strings ("120ms").
type wireSettings struct {
	Delay     string `json:"delay"`
	Jitter    string `json:"jitter"`
	Blackhole bool   `json:"blackhole"`
	Stats     *Stats `json:"stats,omitempty"` // in answers only
}

func toWire(s Settings) wireSettings {
	return wireSettings{Delay: s.Delay.String(), Jitter: s.Jitter.String(), Blackhole: s.Blackhole}
}

func fromWire(w wireSettings) (Settings, error) {
	var s Settings
	var err error
	if w.Delay != "" {
		if s.Delay, err = time.ParseDuration(w.Delay); err != nil {
			return s, fmt.Errorf("delay: %w", err)
		}
	}
	if w.Jitter != "" {
		if s.Jitter, err = time.ParseDuration(w.Jitter); err != nil {
			return s, fmt.Errorf("jitter: %w", err)
		}
	}
	if s.Delay < 0 || s.Jitter < 0 {
		return s, errors.New("delay and jitter must not be negative")
	}
	s.Blackhole = w.Blackhole
	return s, nil
}

// Handler serves the control endpoint: GET /settings returns the settings
// and stats; PUT (or POST) /settings with {"delay":"100ms","jitter":"20ms",
// "blackhole":false} replaces them (fields left out are zero).
func (p *Proxy) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/settings", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
		case http.MethodPut, http.MethodPost:
			var ws wireSettings
			if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&ws); err != nil {
				http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
				return
			}
			s, err := fromWire(ws)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			p.Set(s)
		default:
			http.Error(w, "GET or PUT", http.StatusMethodNotAllowed)
			return
		}
		ws := toWire(p.Settings())
		st := p.Stats()
		ws.Stats = &st
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ws)
	})
	return mux
}

var httpClient = &http.Client{Timeout: 3 * time.Second}

func call(ctx context.Context, method, control string, body []byte) (Settings, Stats, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+control+"/settings", bytes.NewReader(body))
	if err != nil {
		return Settings{}, Stats{}, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return Settings{}, Stats{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return Settings{}, Stats{}, fmt.Errorf("proxy control %s: %s: %s", control, resp.Status, strings.TrimSpace(string(b)))
	}
	var ws wireSettings
	if err := json.Unmarshal(b, &ws); err != nil {
		return Settings{}, Stats{}, fmt.Errorf("proxy control %s: %w", control, err)
	}
	s, err := fromWire(ws)
	var st Stats
	if ws.Stats != nil {
		st = *ws.Stats
	}
	return s, st, err
}

// SetRemote replaces the settings of the proxy whose control endpoint is
// control (host:port).
func SetRemote(ctx context.Context, control string, s Settings) error {
	b, _ := json.Marshal(toWire(s))
	_, _, err := call(ctx, http.MethodPut, control, b)
	return err
}

// GetRemote returns the settings and stats of a proxy.
func GetRemote(ctx context.Context, control string) (Settings, Stats, error) {
	return call(ctx, http.MethodGet, control, nil)
}

// Spec says where a proxy process listens, forwards to and is controlled.
type Spec struct {
	Listen, Target, Control string
}

// String is the form ParseSpec reads.
func (s Spec) String() string {
	return fmt.Sprintf("listen=%s,target=%s,control=%s", s.Listen, s.Target, s.Control)
}

// ParseSpec reads "listen=HOST:PORT,target=HOST:PORT,control=HOST:PORT".
func ParseSpec(v string) (Spec, error) {
	var s Spec
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return s, fmt.Errorf("proxy spec %q: %q is not key=value", v, kv)
		}
		if _, _, err := net.SplitHostPort(val); err != nil {
			return s, fmt.Errorf("proxy spec %q: %s: %w", v, k, err)
		}
		switch k {
		case "listen":
			s.Listen = val
		case "target":
			s.Target = val
		case "control":
			s.Control = val
		default:
			return s, fmt.Errorf("proxy spec %q: unknown key %q (listen, target, control)", v, k)
		}
	}
	if s.Listen == "" || s.Target == "" || s.Control == "" {
		return s, fmt.Errorf("proxy spec %q: listen, target and control are all required", v)
	}
	return s, nil
}

// Serve runs a proxy and its control endpoint until ctx ends.
func Serve(ctx context.Context, s Spec, logf func(string, ...any)) error {
	p, err := Listen(s.Listen, s.Target)
	if err != nil {
		return err
	}
	defer p.Close()
	cl, err := net.Listen("tcp", s.Control)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: logged(p.Handler(), logf), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(cl) }()
	logf("proxy %s -> %s, control on %s", p.Addr(), s.Target, cl.Addr())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	_ = srv.Close()
	st := p.Stats()
	logf("proxy %s stopping: %d connections accepted, %d bytes forwarded", p.Addr(), st.Accepted, st.Bytes)
	return err
}

func logged(h http.Handler, logf func(string, ...any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			var b bytes.Buffer
			_, _ = io.Copy(&b, io.LimitReader(r.Body, 4096))
			r.Body = io.NopCloser(&b)
			logf("control %s %s %s", r.Method, r.URL.Path, strings.TrimSpace(b.String()))
		}
		h.ServeHTTP(w, r)
	})
}

// Main is the body of a proxy process: it parses spec, serves until SIGTERM
// or SIGINT and returns the exit code. Log lines go to stderr.
func Main(spec string) int {
	s, err := ParseSpec(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	lg := log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Serve(ctx, s, lg.Printf); err != nil {
		lg.Printf("proxy: %v", err)
		return 1
	}
	return 0
}
