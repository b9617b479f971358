// Converting a ServiceAPI to a UserAPI must not compile.
package main

import "github.com/erpnetgo/auth/hybrid"

func main() {
	var s hybrid.ServiceAPI
	_ = hybrid.UserAPI(s)
}
