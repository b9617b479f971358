package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/erpnetgo/auth/erpnettest"
	"github.com/erpnetgo/auth/hybrid"
)

// moreSteps returns the steps of packages built on the basic flows.
func moreSteps(q *qs) []step {
	return []step{{"5. One app, both identities, never mixed (hybrid)", q.hybrid}}
}

func (q *qs) hybrid(ctx context.Context) error {
	key := make([]byte, 32)
	rand.Read(key)
	var audit bytes.Buffer
	app, err := hybrid.New(hybrid.Config{
		// One Trusted Application serves both flows, as ERP.net documents.
		Authority: q.idp.URL(), ClientID: erpnettest.Demo.WebAppID, ClientSecret: erpnettest.Demo.WebAppSecret,
		RedirectURL: q.portal.URL + "/callback", PostLogoutRedirectURL: q.portal.URL + "/",
		UserScopes: []string{"openid", "profile", "offline_access", "read"}, ServiceScopes: []string{"read"},
		Keys:        [][]byte{key},
		AuditLogger: slog.New(slog.NewTextHandler(&audit, nil)),
	})
	if err != nil {
		return err
	}
	defer app.Close()
	q.portalMux.Handle("/signin", app.SignIn())
	q.portalMux.Handle("/callback", app.Callback())
	q.portalMux.Handle("/", app.WithUser(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _ := hybrid.UserFrom(r.Context())
		// The user's own data, read with the user's token.
		mine, _, err := get(r.Context(), user.UserClient(), q.odata("Crm_Sales_Customers?$top=2"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		// A job the user triggers, run as the System User and audited.
		var job string
		err = app.RunAsService(r.Context(), r, "import-customers", func(ctx context.Context, svc hybrid.ServiceAPI) error {
			job, _, err = get(ctx, svc.ServiceClient(), q.odata("Crm_Sales_Customers"))
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "read as %s; import ran as %s", mine, job)
	})))

	browser, err := q.idp.SignIn(q.portal.URL+"/signin", erpnettest.Demo.Alice)
	if err != nil {
		return err
	}
	page, err := fetch(ctx, browser, http.MethodGet, q.portal.URL+"/")
	if err != nil {
		return err
	}
	if page != "read as user:alice; import ran as system:portal-system" {
		return fmt.Errorf("portal page: %q", page)
	}
	q.say("", "page: %q", page)

	// The guard: a request that already carries a token is refused by the
	// service client before anything is sent.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, q.odata("Crm_Sales_Customers"), nil)
	req.Header.Set("Authorization", "Bearer a-user-token")
	_, err = app.Service().ServiceClient().Do(req)
	if !errors.Is(err, hybrid.ErrIdentityMix) {
		return fmt.Errorf("guard: want ErrIdentityMix, got %v", err)
	}
	q.say("", "a request already carrying a token, sent through the service client: refused, nothing sent")
	for _, line := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		if strings.Contains(line, "finished") {
			q.say("", "audit: %s", line[strings.Index(line, "msg="):])
		}
	}
	return nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
