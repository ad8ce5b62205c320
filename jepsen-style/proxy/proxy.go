package proxy

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Settings shape the traffic in both directions of every connection.
type Settings struct {
	Delay     time.Duration // added to every chunk, in each direction
	Jitter    time.Duration // plus a uniform random extra in [0, Jitter)
	Blackhole bool          // hold all data (nothing is dropped) until lifted
}

// Stats counts what a proxy has done.
type Stats struct {
	Accepted int64 `json:"accepted"` // connections accepted
	Active   int64 `json:"active"`   // connections open now
	Bytes    int64 `json:"bytes"`    // bytes forwarded, both directions
}

const (
	chunkSize  = 32 << 10
	queueLen   = 256 // chunks per direction; then the reader stops reading
	dialTimout = 5 * time.Second
)

// Proxy forwards connections accepted on a listener to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	settings Settings
	changed  chan struct{} // closed and replaced by every Set
	links    map[*link]struct{}
	closed   bool

	wg       sync.WaitGroup
	accepted atomic.Int64
	bytes    atomic.Int64
}

// Listen starts a proxy on addr that forwards to target.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return New(ln, target), nil
}

// New starts a proxy that accepts on ln and forwards to target. The proxy
// owns ln.
func New(ln net.Listener, target string) *Proxy {
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p
}

// Addr is the listening address.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Set replaces the settings; they apply at once, also to queued data.
func (p *Proxy) Set(s Settings) {
	if s.Delay < 0 {
		s.Delay = 0
	}
	if s.Jitter < 0 {
		s.Jitter = 0
	}
	p.mu.Lock()
	p.settings = s
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// Settings returns the current settings.
func (p *Proxy) Settings() Settings {
	s, _ := p.current()
	return s
}

func (p *Proxy) current() (Settings, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.settings, p.changed
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := int64(len(p.links))
	p.mu.Unlock()
	return Stats{Accepted: p.accepted.Load(), Active: active, Bytes: p.bytes.Load()}
}

// Close stops accepting, closes every connection and waits for the
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE
			continue
		}
		p.accepted.Add(1)
		l := &link{p: p, client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go l.run()
	}
}

// link is one proxied connection: client <-> upstream.
type link struct {
	p        *Proxy
	client   net.Conn
	upstream net.Conn
	mu       sync.Mutex
	done     chan struct{}
	once     sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		l.client.Close()
		l.mu.Lock()
		if l.upstream != nil {
			l.upstream.Close()
		}
		l.mu.Unlock()
	})
}

func (l *link) run() {
	defer l.p.wg.Done()
	defer func() {
		l.close()
		l.p.mu.Lock()
		delete(l.p.links, l)
		l.p.mu.Unlock()
	}()
	d := net.Dialer{Timeout: dialTimout}
	up, err := d.Dial("tcp", l.p.target)
	if err != nil {
		return
	}
	l.mu.Lock()
	l.upstream = up
	l.mu.Unlock()
	select {
	case <-l.done: // closed while dialing
		up.Close()
		return
	default:
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pipe(l.client, up) }()
	go func() { defer wg.Done(); l.pipe(up, l.client) }()
	wg.Wait()
}

type chunk struct {
	data []byte
	at   time.Time // when it was read
	u    float64   // jitter fraction in [0, 1)
	end  bool      // src is done: EOF (err nil) or an error
	err  error
}

// pipe forwards src to dst through a delay queue. It returns when src has
// ended and dst got the end, or when the link closes.
func (l *link) pipe(src, dst net.Conn) {
	q := make(chan chunk, queueLen)
	go func() { // reader
		buf := make([]byte, chunkSize)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				c := chunk{data: append([]byte(nil), buf[:n]...), at: time.Now(), u: rand.Float64()}
				select {
				case q <- c:
				case <-l.done:
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				select {
				case q <- chunk{end: true, err: err, at: time.Now()}:
				case <-l.done:
				}
				return
			}
		}
	}()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var c chunk
		select {
		case c = <-q:
		case <-l.done:
			return
		}
		// wait until the chunk is due under the current settings
		for {
			s, changed := l.p.current()
			var wait <-chan time.Time
			if !s.Blackhole {
				due := c.at.Add(s.Delay + time.Duration(c.u*float64(s.Jitter)))
				d := time.Until(due)
				if d <= 0 {
					break
				}
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				wait = timer.C
			}
			select {
			case <-wait:
			case <-changed:
				if timer != nil {
					timer.Stop()
				}
			case <-l.done:
				return
			}
		}
		if c.end {
			if c.err != nil {
				l.close() // a reset or other error: end the whole connection
				return
			}
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				if cw.CloseWrite() == nil {
					return // half-close; the other direction may go on
				}
			}
			l.close()
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			l.close()
			return
		}
		l.p.bytes.Add(int64(len(c.data)))
	}
}
