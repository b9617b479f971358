// Converting a UserAPI to a ServiceAPI must not compile.
package main

import "github.com/erpnetgo/auth/hybrid"

func main() {
	var u hybrid.UserAPI
	_ = hybrid.ServiceAPI(u)
}
