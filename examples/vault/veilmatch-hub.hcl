# Vault policy for the veilmatch hub: sign audit checkpoints with the Transit
# ed25519 key veilmatch-checkpoints, and read that key's public part to
# publish the verifier key auditors pin. The private key never leaves Vault.
path "transit/sign/veilmatch-checkpoints" {
  capabilities = ["update"]
}

path "transit/keys/veilmatch-checkpoints" {
  capabilities = ["read"]
}
