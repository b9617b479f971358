// Passing a UserAPI to a function that takes a ServiceAPI must not compile.
package main

import (
	"context"

	"github.com/erpnetgo/auth/hybrid"
)

func importAll(ctx context.Context, svc hybrid.ServiceAPI) error {
	_, err := svc.ServiceClient().Get("https://demodb.my.erp.net/api/domain/odata/Crm_Sales_Customers")
	return err
}

func main() {
	var u hybrid.UserAPI
	_ = importAll(context.Background(), u)
}
