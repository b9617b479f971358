// No interface that hands out a client is satisfied by both types: one
// written for either side's client rejects the other side.
package main

import (
	"net/http"

	"github.com/erpnetgo/auth/hybrid"
)

type serviceClienter interface{ ServiceClient() *http.Client }

type userClienter interface{ UserClient() *http.Client }

func main() {
	var u hybrid.UserAPI
	var s hybrid.ServiceAPI
	var sc serviceClienter = u
	var uc userClienter = s
	_, _ = sc, uc
}
