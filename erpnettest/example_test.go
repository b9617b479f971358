package erpnettest_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/erpnetgo/auth/erpnettest"
)

// Start serves ERP.net auto-discovery at the instance root; the identity server is at
// Authority and the Domain API at DomainAPI.
func ExampleStart() {
	srv, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	resp, err := http.Get(srv.URL() + "/sys/auto-discovery")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct{ WebSites []struct{ Type, Url string } }
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		log.Fatal(err)
	}
	for _, site := range doc.WebSites {
		fmt.Println(site.Type, strings.Replace(site.Url, srv.URL(), "<root>", 1))
	}
	fmt.Println(srv.Authority() == srv.URL()+"/id", srv.DomainAPI() == srv.URL()+"/api/domain/odata/")
	// Output:
	// ID <root>/id
	// DomainAPI <root>/api/domain
	// true true
}

// The server's clock decides expiry: a PAT minted for a year stops working after it.
func ExampleServer_Advance() {
	srv, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	pat := srv.MintPAT(erpnettest.Demo.Bob)

	fmt.Println(apiStatus(srv, pat))
	srv.Advance(366 * 24 * time.Hour)
	fmt.Println(apiStatus(srv, pat))
	// Output:
	// 200
	// 401
}

func apiStatus(srv *erpnettest.Server, token string) int {
	req, _ := http.NewRequest(http.MethodGet, srv.DomainAPI()+"Crm_Sales_Customers", nil)
	req.Header.Set("X-Api-Key", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
