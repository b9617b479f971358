package clientcreds

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/erpnetgo/auth/internal/transport"
)

// openSources counts the Sources of this process that are open, per
// instance and client: each one's token opens its own ERP.net session (a
// license slot) when it first reaches the API.
var openSources sync.Map // instance origin + " " + client_id -> *sourceCount

type sourceCount struct {
	open   atomic.Int64
	warned atomic.Bool
}

// countSource registers a new Source of cfg and warns, once per process
// and client, when another Source for the same instance and client is
// already open. It returns the function that unregisters it.
func countSource(cfg Config, log *slog.Logger) (release func()) {
	key := transport.OriginOf(cfg.Authority) + " " + cfg.ClientID
	v, _ := openSources.LoadOrStore(key, new(sourceCount))
	c := v.(*sourceCount)
	if c.open.Add(1) > 1 && !c.warned.Swap(true) {
		log.Warn("erpnet: a second clientcreds.Source for the same instance and client is open in this process: "+
			"each Source's token opens its own ERP.net session and takes another license slot; create one Source per process and share it",
			"client_id", cfg.ClientID, "authority", cfg.Authority)
	}
	var once sync.Once
	return func() { once.Do(func() { c.open.Add(-1) }) }
}
