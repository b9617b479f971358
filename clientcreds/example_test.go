package clientcreds_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/erpnetgo/auth"
	"log"

	"golang.org/x/oauth2"

	"github.com/erpnetgo/auth/clientcreds"
	"github.com/erpnetgo/auth/internal/devserver"
)

// A background worker creates one Source at start-up and keeps it for the
// life of the process; its Client adds the cached service token to every
// request.
func ExampleSource_Client() {
	idp, err := devserver.Start(devserver.Demo()) // a real app uses its instance URL
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()

	src, err := clientcreds.New(clientcreds.Config{
		Authority:    idp.URL(), // e.g. https://demodb.my.erp.net
		ClientID:     devserver.DemoWorkerID,
		ClientSecret: devserver.DemoWorkerSecret,
		Scopes:       []string{"read"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	resp, err := src.Client(context.Background()).Get(idp.URL() + "/api/domain/odata/Crm_Sales_Customers?$top=1")
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
	idp, _ := devserver.Start(devserver.Demo())
	defer idp.Close()
	src, _ := clientcreds.New(clientcreds.Config{Authority: idp.URL(), ClientID: devserver.DemoWorkerID, ClientSecret: "wrong"})
	defer src.Close()

	_, err := src.Token(context.Background())
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
	idp, _ := devserver.Start(devserver.Demo())
	defer idp.Close()
	src, _ := clientcreds.New(clientcreds.Config{Authority: idp.URL(), ClientID: devserver.DemoWorkerID,
		ClientSecret: devserver.DemoWorkerSecret, Scopes: []string{"read"}})
	defer src.Close()

	ctx := context.Background()
	hc := oauth2.NewClient(ctx, src.TokenSource(ctx))
	resp, err := hc.Get(idp.URL() + "/api/domain/odata/General_Contacts")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}
