package certs

import (
	"embed"
	"io/fs"
)

//go:embed dev/*.crt dev/hub.key dev/keyserver.key dev/keyserver-*.key dev/police-*.key dev/ngo-shelter.key dev/auditor.key
var devFiles embed.FS

// DevFS holds the committed development set of certs/dev (ca.crt, and
// <id>.crt, <id>.key for every party in DefaultParties, but not the CA key) at its root, so
// `veilmatch dev` runs from any directory; use it with mtls.DevFiles(".", id)
// and mtls.ServerConfigFS or mtls.ClientConfigFS. DEV ONLY.
var DevFS fs.FS = devFS()

func devFS() fs.FS {
	sub, err := fs.Sub(devFiles, "dev")
	if err != nil {
		// fs.Sub fails only for an invalid path; "dev" is valid.
		panic("certs: " + err.Error())
	}
	return sub
}
