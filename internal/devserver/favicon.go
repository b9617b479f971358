package devserver

import "net/http"

// pathFavicon is what a browser asks every site for when it shows a page.
const pathFavicon = "/favicon.ico"

// serveFavicon says there is no icon without an error: a 404 would be an
// error in the browser console of every sign-in form, signed-out page and
// error page this server shows.
func serveFavicon(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.WriteHeader(http.StatusNoContent)
}
