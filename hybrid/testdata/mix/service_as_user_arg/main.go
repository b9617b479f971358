// Passing a ServiceAPI to a function that takes a UserAPI must not compile.
package main

import (
	"net/http"

	"github.com/erpnetgo/auth/hybrid"
)

func myOrders(u hybrid.UserAPI) (*http.Response, error) {
	return u.UserClient().Get("https://demodb.my.erp.net/api/domain/odata/Crm_Sales_Customers")
}

func main() {
	var s hybrid.ServiceAPI
	_, _ = myOrders(s)
}
