// Assigning a ServiceAPI to a UserAPI variable must not compile.
package main

import "github.com/erpnetgo/auth/hybrid"

func main() {
	var app *hybrid.App
	var u hybrid.UserAPI = app.Service()
	_ = u
}
