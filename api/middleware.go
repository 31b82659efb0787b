package api

import (
	"net/http"
	"runtime/debug"
	"time"

	"github.com/dicomseal/dicomseal/problem"
	"github.com/go-chi/chi/v5/middleware"
)

// recoverPanics turns a handler panic into a logged 500 problem instead of
// a dropped connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic in handler", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				if st, ok := w.(interface{ started() bool }); ok && st.started() {
					// Part of an answer is out: a problem appended to it
					// would pass for its end. Cut the connection instead.
					panic(http.ErrAbortHandler)
				}
				writeProblem(w, problem.Internal, "internal error", nil)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// logRequests writes one structured line per request. It logs the path
// (UIDs are not patient data) but never headers, which carry credentials.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		s.log.InfoContext(r.Context(), "http request",
			"method", r.Method, "path", r.URL.Path, "status", ww.Status(), "bytes", ww.BytesWritten(),
			"duration_ms", time.Since(start).Milliseconds(), "request_id", middleware.GetReqID(r.Context()),
			"remote", r.RemoteAddr)
	})
}
