# Vault policy for the veilmatch key server: read its OPRF keys from the
# KV v2 secret secret/veilmatch/oprf (every version is a key epoch; the key
# server reads the metadata to find the versions still in their grace
# period). Nothing else: token renewal and lookup come from Vault's default
# policy.
path "secret/data/veilmatch/oprf" {
  capabilities = ["read"]
}

path "secret/metadata/veilmatch/oprf" {
  capabilities = ["read"]
}
