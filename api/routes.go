package api

import (
	"net/http"

	"github.com/dicomseal/dicomseal/auth"
	"github.com/dicomseal/dicomseal/catalog"
)

// route is one entry of the one table that says, for every route, what it
// does (its audit action) and who may call it. The router is built from
// this table, so a route cannot exist without an entry.
type route struct {
	method, pattern string
	action          string
	roles           []auth.Role // who may call it; empty for public routes
	public          func(s *Server) bool
	handler         func(s *Server) http.HandlerFunc
}

func always(*Server) bool         { return true }
func publicLog(s *Server) bool    { return s.PublicLog }
func metricsAllowed(*Server) bool { return true } // guarded by address, see serveMetrics

var (
	ingest  = []auth.Role{auth.RoleIngest}
	viewer  = []auth.Role{auth.RoleViewer}
	auditor = []auth.Role{auth.RoleAuditor}
	admin   = []auth.Role{auth.RoleAdmin}
	// reconciler alone corrects identity, and does nothing else.
	reconciler = []auth.Role{auth.RoleReconciler}
	// anyRole: every role but the reconciler, which does nothing but
	// correct identity (separation of duties).
	anyRole = []auth.Role{auth.RoleIngest, auth.RoleViewer, auth.RoleAuditor, auth.RoleAdmin}
)

// routes is the route table. Separation of duties: ingest only stores;
// viewers retrieve and verify; auditors read the log, proofs and the audit
// trail but never pixel data; admins manage tokens and read the keys;
// reconcilers correct patient and study identity, and nothing else.
var routes = []route{
	{"GET", "/healthz", "health", nil, always, func(s *Server) http.HandlerFunc { return s.healthz }},
	{"GET", "/readyz", "ready", nil, always, func(s *Server) http.HandlerFunc { return s.readyz }},
	{"GET", "/metrics", "metrics", nil, metricsAllowed, func(s *Server) http.HandlerFunc { return s.serveMetrics }},
	{"POST", "/v1/instances", "instance.ingest", ingest, nil, func(s *Server) http.HandlerFunc { return s.ingest }},
	{"GET", "/v1/instances/{sopInstanceUID}", "instance.retrieve", viewer, nil, func(s *Server) http.HandlerFunc { return s.retrieve }},
	{"POST", "/v1/instances/{sopInstanceUID}/identity-corrections", "instance.identity-correction", reconciler, nil,
		func(s *Server) http.HandlerFunc { return s.correctIdentity }},
	{"GET", "/v1/instances/{sopInstanceUID}/attestation", "instance.attestation", []auth.Role{auth.RoleViewer, auth.RoleAuditor}, nil,
		func(s *Server) http.HandlerFunc { return s.attestation }},
	{"POST", "/v1/instances/{sopInstanceUID}/transfers", "instance.transfer", viewer, nil,
		func(s *Server) http.HandlerFunc { return s.transferInstance }},
	{"POST", "/v1/studies/{study}/transfers", "study.transfer", viewer, nil,
		func(s *Server) http.HandlerFunc { return s.transferStudy }},
	{"POST", "/v1/verify", "verify.file", viewer, nil, func(s *Server) http.HandlerFunc { return s.verifyFile }},
	{"GET", "/v1/verify", "verify.digest", []auth.Role{auth.RoleViewer, auth.RoleAuditor}, nil, func(s *Server) http.HandlerFunc { return s.verifyDigest }},
	{"GET", "/v1/keys", "keys.list", anyRole, publicLog, func(s *Server) http.HandlerFunc { return s.keys }},
	{"GET", "/v1/log/checkpoint", "log.checkpoint", anyRole, publicLog, func(s *Server) http.HandlerFunc { return s.checkpoint }},
	{"GET", "/v1/log/entries/{index}", "log.entry", auditor, nil, func(s *Server) http.HandlerFunc { return s.logEntry }},
	{"GET", "/v1/log/proof/inclusion", "log.proof.inclusion", []auth.Role{auth.RoleAuditor, auth.RoleViewer}, nil,
		func(s *Server) http.HandlerFunc { return s.inclusionProof }},
	{"GET", "/v1/log/proof/consistency", "log.proof.consistency", anyRole, publicLog, func(s *Server) http.HandlerFunc { return s.consistencyProof }},
	{"GET", "/v1/log/proof/subject", "log.proof.subject", auditor, nil, func(s *Server) http.HandlerFunc { return s.subjectProof }},
	{"GET", "/v1/custody", "custody.export", auditor, nil, func(s *Server) http.HandlerFunc { return s.custodyReport }},
	{"GET", "/v1/audit", "audit.query", auditor, nil, func(s *Server) http.HandlerFunc { return s.auditQuery }},
	{"GET", "/v1/audit/checkpoint", "audit.checkpoint", anyRole, publicLog, func(s *Server) http.HandlerFunc { return s.auditCheckpoint }},
	{"GET", "/v1/audit/proof/consistency", "audit.proof.consistency", anyRole, publicLog,
		func(s *Server) http.HandlerFunc { return s.auditConsistencyProof }},
	{"GET", "/v1/audit/proof/subject", "audit.proof.subject", auditor, nil, func(s *Server) http.HandlerFunc { return s.auditSubjectProof }},
	{"POST", "/v1/tokens", "token.create", admin, nil, func(s *Server) http.HandlerFunc { return s.createToken }},
	{"GET", "/v1/tokens", "token.list", admin, nil, func(s *Server) http.HandlerFunc { return s.listTokens }},
	{"DELETE", "/v1/tokens/{name}", "token.revoke", admin, nil, func(s *Server) http.HandlerFunc { return s.revokeToken }},

	// DICOMweb (PS3.18): STOW-RS stores (ingest), WADO-RS and QIDO-RS
	// retrieve and search (viewer). Each instance stored or sent is
	// also recorded on its own, as the native routes record theirs.
	{"POST", "/dicomweb/studies", "dicomweb.store", ingest, nil, func(s *Server) http.HandlerFunc { return s.stow }},
	{"POST", "/dicomweb/studies/{study}", "dicomweb.store", ingest, nil, func(s *Server) http.HandlerFunc { return s.stow }},
	{"GET", "/dicomweb/studies", "dicomweb.search.studies", viewer, nil, qido(catalog.StudyLevel)},
	{"GET", "/dicomweb/series", "dicomweb.search.series", viewer, nil, qido(catalog.SeriesLevel)},
	{"GET", "/dicomweb/instances", "dicomweb.search.instances", viewer, nil, qido(catalog.InstanceLevel)},
	{"GET", "/dicomweb/studies/{study}/series", "dicomweb.search.series", viewer, nil, qido(catalog.SeriesLevel)},
	{"GET", "/dicomweb/studies/{study}/instances", "dicomweb.search.instances", viewer, nil, qido(catalog.InstanceLevel)},
	{"GET", "/dicomweb/studies/{study}/series/{series}/instances", "dicomweb.search.instances", viewer, nil, qido(catalog.InstanceLevel)},
	{"GET", "/dicomweb/studies/{study}", "dicomweb.retrieve.study", viewer, nil, wado},
	{"GET", "/dicomweb/studies/{study}/series/{series}", "dicomweb.retrieve.series", viewer, nil, wado},
	{"GET", "/dicomweb/studies/{study}/series/{series}/instances/{instance}", "dicomweb.retrieve.instance", viewer, nil, wado},
	{"GET", "/dicomweb/studies/{study}/metadata", "dicomweb.metadata.study", viewer, nil, metadata},
	{"GET", "/dicomweb/studies/{study}/series/{series}/metadata", "dicomweb.metadata.series", viewer, nil, metadata},
	{"GET", "/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata", "dicomweb.metadata.instance", viewer, nil, metadata},
	{"GET", "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", "dicomweb.frames", viewer, nil,
		func(s *Server) http.HandlerFunc { return s.wadoFrames }},
	{"GET", "/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}", "dicomweb.bulkdata", viewer, nil,
		func(s *Server) http.HandlerFunc { return s.wadoBulkData }},
}

func qido(level catalog.Level) func(s *Server) http.HandlerFunc {
	return func(s *Server) http.HandlerFunc { return s.qido(level) }
}
func wado(s *Server) http.HandlerFunc     { return s.wadoRetrieve }
func metadata(s *Server) http.HandlerFunc { return s.wadoMetadata }

// Routes describes the route table for tests and documentation: method,
// pattern, the roles allowed, and whether it is public under this server's
// configuration.
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, len(routes))
	for i, rt := range routes {
		out[i] = RouteInfo{Method: rt.method, Pattern: rt.pattern, Action: rt.action, Roles: rt.roles,
			Public: rt.public != nil && rt.public(s)}
	}
	return out
}

// RouteInfo is one route as Routes reports it.
type RouteInfo struct {
	Method, Pattern, Action string
	Roles                   []auth.Role
	Public                  bool
}
