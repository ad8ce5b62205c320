package server

import (
	"testing"
	"testing/synctest"
	"time"
)

// A request never waits for another one; a worker that finished takes the
// next request instead of a new goroutine; idle workers end after their
// idle time, or at stop.
func TestWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorkers(time.Minute)
		block := make(chan struct{})
		ran := 0
		w.run(func() { <-block })
		w.run(func() { ran++ })
		synctest.Wait() // every goroutine of the bubble is blocked
		if ran != 1 {
			t.Fatal("the second job did not run while the first one was blocked")
		}
		close(block)
		synctest.Wait()
		if n := w.started.Load(); n != 2 {
			t.Fatalf("%d goroutines for two concurrent jobs, want 2", n)
		}
		for range 20 {
			w.run(func() { ran++ })
			synctest.Wait()
		}
		if ran != 21 {
			t.Fatalf("%d jobs ran, want 21", ran)
		}
		if n := w.started.Load(); n != 2 {
			t.Fatalf("%d goroutines after jobs run one at a time, want the two idle ones reused", n)
		}
		time.Sleep(2 * time.Minute) // fake time: past the idle time
		synctest.Wait()
		w.run(func() { ran++ })
		synctest.Wait()
		if n := w.started.Load(); n != 3 {
			t.Fatalf("%d goroutines started, want a third after the idle ones ended", n)
		}
		w.stop() // returns only once the idle worker ended
	})
}
