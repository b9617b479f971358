package instances_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/instances"
)

// One Hooks serves every instance: each event names the instance it is
// about (Event.Authority, the instance root), so a vendor's metrics and
// alerts can tell acme's failures from globex's.
func TestHooksNameTheInstance(t *testing.T) {
	ins := []*instance{newInstance(t, "acme"), newInstance(t, "globex")}
	var mu sync.Mutex
	got := map[string][]string{} // authority -> event names
	hooks := &auth.Hooks{Event: func(_ context.Context, e auth.Event) {
		mu.Lock()
		defer mu.Unlock()
		got[e.Authority] = append(got[e.Authority], e.Flow+" "+e.Name)
	}}
	a := newApp(t, instances.Config{Hooks: hooks})
	ctx := context.Background()
	for _, in := range ins {
		if err := a.reg.Add(ctx, in.URL()+"/", in.secret); err != nil {
			t.Fatal(err)
		}
		a.signIn(in, "alice")
		src, err := a.reg.Service(ctx, in.URL())
		if err != nil {
			t.Fatal(err)
		}
		api, err := src.DomainAPI(ctx)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := src.Client(ctx).Get(api + "Crm_Sales_Customers?$top=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", in.URL(), resp.Status)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if names := got[""]; len(names) > 0 {
		t.Errorf("events without an Authority: %q", names)
	}
	for _, in := range ins {
		names := got[in.URL()]
		for _, want := range []string{"authcode token.issued", "authcode signin.completed", "clientcreds token.issued", "clientcreds api.session_opened"} {
			n := 0
			for _, name := range names {
				if name == want {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s: %d %q events; want 1 (all its events: %q)", in.URL(), n, want, names)
			}
		}
	}
	if len(got) != len(ins) {
		t.Errorf("events name %d authorities; want %d: %v", len(got), len(ins), got)
	}
}
