package clock

import (
	"sync/atomic"
	"testing"
	"time"
)

type fake struct{ off atomic.Int64 }

func (f *fake) now() time.Time { return time.Unix(1_000_000, 0).Add(time.Duration(f.off.Load())) }

func TestFuncClockFiresWhenItsTimeComes(t *testing.T) {
	var f fake
	c := From(f.now)
	var fired []string
	c.AfterFunc(time.Minute, func() { fired = append(fired, "1m") })
	stopped := c.AfterFunc(2*time.Minute, func() { fired = append(fired, "2m") })
	c.AfterFunc(3*time.Minute, func() { fired = append(fired, "3m") })
	c.Now()
	if len(fired) != 0 {
		t.Fatalf("fired before their time: %v", fired)
	}
	f.off.Add(int64(90 * time.Second))
	c.Now()
	if len(fired) != 1 || fired[0] != "1m" {
		t.Fatalf("after 90s: %v", fired)
	}
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	f.off.Add(int64(10 * time.Minute))
	Poke() // as the test server's Advance does
	if len(fired) != 2 || fired[1] != "3m" {
		t.Fatalf("after Poke: %v", fired)
	}
	if stopped.Stop() {
		t.Fatal("Stop of a stopped timer reported true")
	}
}

func TestFromNilIsReal(t *testing.T) {
	if From(nil) != Real {
		t.Fatal("From(nil) is not Real")
	}
	done := make(chan struct{})
	Real.AfterFunc(time.Millisecond, func() { close(done) })
	<-done
}
