package main

import "net/url"

// moreSteps returns the steps of packages added later.
func moreSteps(q *qs) []step {
	return nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
