package authcode

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A replayed callback that reaches two replicas at the same instant must be
// accepted once: the used-state record is added atomically (Store.Add).
func TestReplayedStateAcceptedOnceAcrossReplicas(t *testing.T) {
	e := newEnv(t, withSharedStore())
	other, err := New(e.cfg) // a second replica sharing e's Store
	require.NoError(t, err)
	defer other.Close()
	a := e.c.newAttempt("/")
	var ok, replay atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 40; i++ {
		c := e.c
		if i%2 == 1 {
			c = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			switch err := c.markStateUsed(context.Background(), a); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrInvalidState):
				replay.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	assert.Equal(t, int32(1), ok.Load())
	assert.Equal(t, int32(39), replay.Load())
}
