// Package instances serves many ERP.net instances from one application:
// the vendor's sync worker for 300 customers, the portal where a user of
// acme.my.erp.net signs in next to a user of globex.my.erp.net, the
// customer who installs the app from the ERP.net Marketplace at 14:02 and
// is served at 14:03 without a restart.
//
// Every ERP.net customer runs their own instance with its own identity
// server, and registers the app there as a Trusted Application: the same
// client_id and redirect URI everywhere, a different secret on each. A
// Registry holds those instances (Add, Remove, or the Marketplace's
// lifecycle events) and gives each its own clients, built on first use:
//
//	reg, err := instances.New(instances.Config{
//		ClientID:    "com.example/vendor",
//		RedirectURL: "https://app.example.com/callback",
//		Keys:        keys,     // seal cookies and the secrets in Secrets
//		Store:       store,    // sessions of every instance (e.g. authcode/redisstore)
//		Secrets:     secrets,  // each instance's sealed secret (your database)
//		Resolve:     fromHost, // which instance a request is for
//	})
//	mux.Handle("/signin", reg.SignIn())
//	mux.Handle("/callback", reg.Callback()) // sign-ins of every instance, and Marketplace events
//	mux.Handle("POST /signout", reg.SignOut())
//	mux.Handle("/", reg.RequireUser(app))   // authcode.SessionFromContext, reg.UserClient
//
//	src, err := reg.Service(ctx, "https://acme.my.erp.net") // the instance's System User
//
// # Safe against mix-up
//
// Some identity servers a vendor's app trusts are run by strangers: anyone
// can install the app. A sign-in attempt is bound to the instance it
// started at (the instance is named in its state and bound into its
// sealed cookie); the callback hands it to that instance's client alone,
// which refuses an RFC 9207 iss naming another issuer and an ID token from
// another issuer, and redeems the code only at its own token endpoint with
// its own secret. Sessions, refresh locks and cookies never cross
// instances: one cookie name serves all of them, its value says which
// instance it belongs to, and it opens only with that instance's client.
//
// # Idle instances cost nothing
//
// An instance's clients are built when it is first used; a service token
// is fetched when asked for and refreshed ahead of expiry only while it is
// being used; nothing runs in the background for an instance nobody uses.
// Each process reads an instance's record again at most once a minute, on
// use, so that changes made by another replica arrive.
//
// # Marketplace lifecycle events
//
// When the app is installed from the ERP.net Marketplace, the Marketplace
// posts {"schema":"erpnet.appLifecycleEvent.v2","signature":...,
// "payload":...} to the app's redirect URI. Callback answers such a POST:
// it verifies the RSA-SHA256 signature over JSON.stringify(payload) (the
// payload as received, in JavaScript's serialization) with the
// Marketplace's public key (found through
// <MarketplaceURL>/.well-known/marketplace.json, on the Marketplace's own
// host only; PEM or JWK; cached, and fetched again at most once a minute),
// checks that the event is for this application (request.applicationUri is
// ClientID, request.redirectUri is RedirectURL), and applies it:
// "installed" adds the instance with the secret it carries (without one,
// an instance already served keeps its secret, a new one is added as a
// public client: sign-in only), "uninstalled" removes it. An event the instance's record already shows is answered 200
// and changes nothing; so is one older than the record's last change. A
// bad signature gets 401, a malformed event 400, and nothing is stored.
// Config.OnEvent then lets the app provision its own data.
package instances
