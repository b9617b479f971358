// The control case: each type used as itself compiles.
package main

import (
	"context"
	"net/http"

	"github.com/erpnetgo/auth/hybrid"
)

type serviceClienter interface{ ServiceClient() *http.Client }

type userClienter interface{ UserClient() *http.Client }

func importAll(ctx context.Context, svc hybrid.ServiceAPI) error { return nil }

func myOrders(u hybrid.UserAPI) error { return nil }

func main() {
	var u hybrid.UserAPI
	var s hybrid.ServiceAPI
	var sc serviceClienter = s
	var uc userClienter = u
	_, _ = sc, uc
	_ = importAll(context.Background(), s)
	_ = myOrders(u)
	_ = hybrid.UserAPI(u)
	_ = hybrid.ServiceAPI(s)
}
