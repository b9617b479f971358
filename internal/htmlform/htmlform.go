// Package htmlform is the test kit's one HTML form scraper and the one
// browser walk built on it: follow redirects, fill and post the pages'
// forms, stop where the caller says. erpnettest's Server.SignIn, oidctest's
// Login and EndSession and the interop module's zitadelop use it.
package htmlform

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Form is the first POST form of a page.
type Form struct {
	// Action is where the form posts, resolved against the page's URL by Walk.
	Action string
	// Values are the names and values of its text, password, hidden and email inputs.
	Values url.Values
	// Page is the whole page.
	Page []byte
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?s)([a-zA-Z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))`)
	skipRE  = regexp.MustCompile(`(?is)<(style|script)\b.*?</(style|script)>`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
)

// Parse returns the first form of page with method post, or nil.
func Parse(page []byte) *Form {
	for _, m := range formRE.FindAllSubmatch(page, -1) {
		fa := attrs(m[1])
		if !strings.EqualFold(fa["method"], "post") {
			continue
		}
		f := &Form{Action: fa["action"], Values: url.Values{}, Page: page}
		for _, in := range inputRE.FindAllSubmatch(m[2], -1) {
			ia := attrs(in[1])
			switch strings.ToLower(ia["type"]) {
			case "", "text", "password", "hidden", "email":
				if name := ia["name"]; name != "" {
					f.Values.Add(name, ia["value"])
				}
			}
		}
		return f
	}
	return nil
}

// attrs parses the attributes of an HTML start tag.
func attrs(tag []byte) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllSubmatch(tag, -1) {
		m[strings.ToLower(string(a[1]))] = html.UnescapeString(string(a[2]) + string(a[3]) + string(a[4]))
	}
	return m
}

// Text returns the visible text of an HTML page (or fragment), at most 300
// characters of it, "(empty page)" when it has none.
func Text(page []byte) string {
	t := tagRE.ReplaceAllString(skipRE.ReplaceAllString(string(page), " "), " ")
	t = strings.Join(strings.Fields(html.UnescapeString(t)), " ")
	if r := []rune(t); len(r) > 300 {
		t = string(r[:300]) + "…"
	}
	if t == "" {
		return "(empty page)"
	}
	return t
}

// Redact returns u without its query and fragment, which may carry a code or
// a state, for error messages.
func Redact(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// Walk browses as a browser does with hc, which must not follow redirects
// (its cookie jar is the browser's): it requests start, then follows every
// redirect and posts every page's form after fill has completed it, until
// stop reports that a redirect, from the URL just requested to its
// Location, ends the walk; Walk returns that Location without requesting
// it. A page without a POST form ends the walk too: Walk returns a nil URL
// and the page. Any other answer, or 30 requests, is an error; errors name
// URLs without their queries.
func Walk(ctx context.Context, hc *http.Client, start string, stop func(from, to *url.URL) bool, fill func(*Form) error) (*url.URL, []byte, error) {
	method, next, body := http.MethodGet, start, url.Values(nil)
	for range 30 {
		req, err := http.NewRequestWithContext(ctx, method, next, strings.NewReader(body.Encode())) // GET: empty
		if err != nil {
			return nil, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		where := method + " " + Redact(req.URL)
		resp, err := hc.Do(req)
		if err != nil {
			if ue, ok := err.(*url.Error); ok {
				err = ue.Err // its message would repeat the URL with its query
			}
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		page, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		switch code := resp.StatusCode; {
		case code >= 300 && code < 400:
			loc, err := resp.Location()
			if err != nil {
				return nil, nil, fmt.Errorf("%s answered %s without a usable Location", where, resp.Status)
			}
			if stop(req.URL, loc) {
				return loc, nil, nil
			}
			method, next, body = http.MethodGet, loc.String(), nil
		case code == http.StatusOK:
			f := Parse(page)
			if f == nil {
				return nil, page, nil
			}
			action, err := req.URL.Parse(f.Action)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: bad form action %q", where, f.Action)
			}
			f.Action = action.String()
			if err := fill(f); err != nil {
				return nil, nil, err
			}
			method, next, body = http.MethodPost, f.Action, f.Values
		default:
			return nil, nil, fmt.Errorf("%s answered %s: %s", where, resp.Status, Text(page))
		}
	}
	return nil, nil, errors.New("too many redirects")
}
