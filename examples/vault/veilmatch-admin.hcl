# Vault policy for the operator who rotates the OPRF key with
# `veilmatch keyserver init-key --vault secret/veilmatch/oprf`: write a new
# version of the KV v2 secret (check-and-set against the current version;
# "create" for the first key, "update" after), and read the existing
# versions to refuse a key id that is already in use. Give it to people,
# never to the key server.
path "secret/data/veilmatch/oprf" {
  capabilities = ["create", "update", "read"]
}

path "secret/metadata/veilmatch/oprf" {
  capabilities = ["read"]
}
