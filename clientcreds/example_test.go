package clientcreds_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth"
	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/erpnettest"
)

// A background worker creates one Source at start-up and keeps it for the
// life of the process; its Client adds the cached service token to every
// request.
func ExampleSource_Client() {
	// A local ERP.net stand-in; a real app uses its instance URL.
	idp, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()

	src, err := clientcreds.New(clientcreds.Config{
		Authority:    idp.URL(), // e.g. https://demodb.my.erp.net
		ClientID:     erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret,
		Scopes:       []string{"read"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	resp, err := src.Client(context.Background()).Get(idp.DomainAPI() + "Crm_Sales_Customers?$top=1")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "as", resp.Header.Get("X-Erpnet-Caller"))
	// Output: 200 OK as system:worker-system
}

// Errors tell a misconfiguration, which retrying cannot fix, from a
// temporary failure, which the Source has already retried.
func ExampleSource_Token_errors() {
	idp, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	src, err := clientcreds.New(clientcreds.Config{Authority: idp.URL(), ClientID: erpnettest.Demo.WorkerID, ClientSecret: "wrong"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	_, err = src.Token(context.Background())
	var e *auth.Error
	switch {
	case errors.Is(err, auth.ErrMisconfigured) && errors.As(err, &e):
		fmt.Println("fix the configuration:", e.Code)
	case errors.Is(err, auth.ErrTemporary):
		fmt.Println("try again later")
	}
	// Output: fix the configuration: invalid_client
}

// Code written for golang.org/x/oauth2 takes the Source as a TokenSource.
func ExampleSource_TokenSource() {
	idp, err := erpnettest.Start(erpnettest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	src, err := clientcreds.New(clientcreds.Config{Authority: idp.URL(), ClientID: erpnettest.Demo.WorkerID,
		ClientSecret: erpnettest.Demo.WorkerSecret, Scopes: []string{"read"}})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	ctx := context.Background()
	hc := oauth2.NewClient(ctx, src.TokenSource(ctx))
	resp, err := hc.Get(idp.DomainAPI() + "General_Contacts")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}
