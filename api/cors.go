package api

import (
	"net/http"
	"slices"
)

// corsAllowHeaders are the request headers a browser may send: a viewer's
// bearer token, its Accept, and a STOW-RS body's type.
const corsAllowHeaders = "Authorization, Accept, Content-Type"

// cors lets the web viewers of the origins in --cors-origins (none by
// default) call the API from a browser: a preflight from such an origin is
// answered 204 here, before authentication (browsers send it without
// credentials); every answer to it, errors included, names the origin. An
// origin not configured gets no Access-Control-Allow-Origin, and its
// preflight goes on to the router, which answers 405.
func (s *Server) cors(next http.Handler) http.Handler {
	if len(s.CORSOrigins) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !slices.Contains(s.CORSOrigins, origin) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "Content-Type, Content-Length, ETag, Repr-Digest, Location, Retry-After, WWW-Authenticate")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
