package client

import (
	"context"
	"testing"
	"time"
)

func TestAttemptTimeoutOption(t *testing.T) {
	if _, err := Dial(context.Background(), []string{"127.0.0.1:1"}, WithAttemptTimeout(-time.Second)); err == nil {
		t.Fatal("Dial with a negative attempt timeout succeeded; want an error")
	}
	for _, d := range []time.Duration{0, time.Second} {
		c, err := Dial(context.Background(), []string{"127.0.0.1:1"}, WithAttemptTimeout(d))
		if err != nil {
			t.Fatalf("Dial with WithAttemptTimeout(%v): %v", d, err)
		}
		if c.opts.attemptTimeout != d {
			t.Fatalf("attempt timeout %v; want %v", c.opts.attemptTimeout, d)
		}
		_ = c.Close()
	}
	c, err := Dial(context.Background(), []string{"127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.opts.attemptTimeout != DefaultAttemptTimeout {
		t.Fatalf("default attempt timeout %v; want %v", c.opts.attemptTimeout, DefaultAttemptTimeout)
	}
}
