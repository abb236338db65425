package vaulttest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxVersions is how many versions KV v2 keeps per secret by default.
const maxVersions = 10

// kvSecret is a KV v2 secret with its versions.
type kvSecret struct {
	created, updated time.Time
	current          int
	versions         map[int]*kvVersion
}

type kvVersion struct {
	data      map[string]any // nil once destroyed
	created   time.Time
	deleted   time.Time // zero: not deleted
	destroyed bool
}

// metadata is the version's entry in a metadata response.
func (v *kvVersion) metadata() map[string]any {
	return map[string]any{"created_time": timeString(v.created), "deletion_time": timeString(v.deleted), "destroyed": v.destroyed}
}

// live reports whether reads return the version's data.
func (v *kvVersion) live() bool {
	return !v.destroyed && (v.deleted.IsZero() || v.deleted.After(time.Now()))
}

// kvRoute routes a request under a KV v2 mount.
func (s *Server) kvRoute(secrets map[string]*kvSecret, method, rest string) (handler, string) {
	op, path, _ := strings.Cut(rest, "/")
	if path == "" || strings.HasSuffix(path, "/") {
		return nil, "read"
	}
	sec := secrets[path]
	switch {
	case op == "data" && method == http.MethodGet:
		return func(w http.ResponseWriter, _ map[string]any, q map[string][]string) { s.kvRead(w, sec, q) }, "read"
	case op == "data" && method == http.MethodPost:
		capability := "update"
		if sec == nil {
			capability = "create"
		}
		return func(w http.ResponseWriter, body map[string]any, _ map[string][]string) {
			s.kvWrite(w, secrets, path, body)
		}, capability
	case op == "metadata" && method == http.MethodGet:
		return func(w http.ResponseWriter, _ map[string]any, _ map[string][]string) { s.kvMetadata(w, sec) }, "read"
	case (op == "delete" || op == "destroy") && method == http.MethodPost:
		return func(w http.ResponseWriter, body map[string]any, _ map[string][]string) { s.kvDelete(w, sec, op, body) }, "update"
	}
	return nil, "read"
}

func (s *Server) kvRead(w http.ResponseWriter, sec *kvSecret, q map[string][]string) {
	if sec == nil {
		fail(w, http.StatusNotFound)
		return
	}
	n := sec.current
	if vs := q["version"]; len(vs) > 0 && vs[0] != "" {
		v, err := strconv.Atoi(vs[0])
		if err != nil {
			fail(w, http.StatusBadRequest, `error converting input `+strconv.Quote(vs[0])+` for field "version"`)
			return
		}
		if v > 0 {
			n = v
		}
	}
	v := sec.versions[n]
	if v == nil {
		fail(w, http.StatusNotFound)
		return
	}
	md := v.metadata()
	md["version"] = n
	md["custom_metadata"] = nil
	data := map[string]any{"data": v.data, "metadata": md}
	if !v.live() {
		// Vault answers a deleted or destroyed version with its metadata and
		// a 404.
		data["data"] = nil
		reply(w, http.StatusNotFound, envelope{RequestID: uuid(), Data: data, MountType: "kv"})
		return
	}
	respond(w, "kv", data)
}

func (s *Server) kvWrite(w http.ResponseWriter, secrets map[string]*kvSecret, path string, body map[string]any) {
	data, isMap := body["data"].(map[string]any)
	if !isMap {
		fail(w, http.StatusBadRequest, "no data provided")
		return
	}
	sec := secrets[path]
	current := 0
	if sec != nil {
		current = sec.current
	}
	if opts, _ := body["options"].(map[string]any); opts != nil {
		if raw, set := opts["cas"]; set {
			cas, valid := intParam(raw)
			if !valid {
				fail(w, http.StatusBadRequest, "error parsing check-and-set parameter")
				return
			}
			if cas != current {
				fail(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
				return
			}
		}
	}
	now := time.Now()
	if sec == nil {
		sec = &kvSecret{created: now, versions: map[int]*kvVersion{}}
		secrets[path] = sec
	}
	sec.current++
	sec.updated = now
	v := &kvVersion{data: data, created: now}
	sec.versions[sec.current] = v
	for len(sec.versions) > maxVersions {
		delete(sec.versions, sortedKeys(sec.versions)[0])
	}
	md := v.metadata()
	md["version"] = sec.current
	md["custom_metadata"] = nil
	respond(w, "kv", md)
}

func (s *Server) kvMetadata(w http.ResponseWriter, sec *kvSecret) {
	if sec == nil {
		fail(w, http.StatusNotFound)
		return
	}
	versions := map[string]any{}
	for n, v := range sec.versions {
		versions[strconv.Itoa(n)] = v.metadata()
	}
	respond(w, "kv", map[string]any{
		"cas_required":         false,
		"created_time":         timeString(sec.created),
		"current_version":      sec.current,
		"custom_metadata":      nil,
		"delete_version_after": "0s",
		"max_versions":         0,
		"oldest_version":       sortedKeys(sec.versions)[0],
		"updated_time":         timeString(sec.updated),
		"versions":             versions,
	})
}

func (s *Server) kvDelete(w http.ResponseWriter, sec *kvSecret, op string, body map[string]any) {
	raw, _ := body["versions"].([]any)
	if len(raw) == 0 {
		fail(w, http.StatusBadRequest, "no version number provided")
		return
	}
	if sec == nil {
		reply(w, 0, nil)
		return
	}
	for _, r := range raw {
		n, valid := intParam(r)
		v := sec.versions[n]
		if !valid || v == nil {
			continue
		}
		if op == "destroy" {
			v.destroyed, v.data = true, nil
		} else if v.deleted.IsZero() {
			v.deleted = time.Now()
		}
	}
	reply(w, 0, nil)
}
