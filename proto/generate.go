// Package proto holds the veilmatch wire protocol. The generated Go code lives
// in veilmatch/v1; regenerate it with `go generate ./proto/...`.
package proto

//go:generate go tool -modfile=tools.mod buf lint
//go:generate go tool -modfile=tools.mod buf generate
