// Assigning a UserAPI to a ServiceAPI variable must not compile.
package main

import "github.com/erpnetgo/auth/hybrid"

func main() {
	var u hybrid.UserAPI
	var s hybrid.ServiceAPI = u
	_ = s
}
