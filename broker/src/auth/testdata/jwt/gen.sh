#!/bin/sh
# Regenerates the JWT test fixtures in this folder. Needs openssl (3.x), xxd, base64, tr.
# Run once from this folder: sh gen.sh. The keys are for tests only: never use them anywhere else.
set -eu

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# Private keys (PKCS#8 PEM) and their public keys (SubjectPublicKeyInfo PEM).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa_private.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2_private.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec256_private.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384_private.pem
openssl genpkey -algorithm ED25519 -out ed25519_private.pem
for k in rsa rsa2 ec256 ec384 ed25519; do
    openssl pkey -in ${k}_private.pem -pubout -out ${k}_public.pem
done

# JWKS: the public keys again, as RFC 7517 JWKs.
rsa_n() { openssl rsa -pubin -in "$1" -noout -modulus | cut -d= -f2 | xxd -r -p | b64url; }
# RSA exponent is 65537 (openssl's default) = AQAB.
# EC/Ed: the raw public key is the tail of the DER SubjectPublicKeyInfo.
raw_pub() { openssl pkey -pubin -in "$1" -outform DER | tail -c "$2"; }
ec_x() { raw_pub "$1" "$2" | head -c "$3" | b64url; }
ec_y() { raw_pub "$1" "$2" | tail -c "$3" | b64url; }

cat > jwks.json <<JSON
{
  "keys": [
    {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": "$(rsa_n rsa_public.pem)", "e": "AQAB"},
    {"kty": "RSA", "kid": "rsa-2", "use": "sig", "n": "$(rsa_n rsa2_public.pem)", "e": "AQAB"},
    {"kty": "EC", "kid": "ec-p256", "use": "sig", "crv": "P-256", "x": "$(ec_x ec256_public.pem 64 32)", "y": "$(ec_y ec256_public.pem 64 32)"},
    {"kty": "EC", "kid": "ec-p384", "use": "sig", "crv": "P-384", "x": "$(ec_x ec384_public.pem 96 48)", "y": "$(ec_y ec384_public.pem 96 48)"},
    {"kty": "OKP", "kid": "ed-1", "use": "sig", "crv": "Ed25519", "x": "$(raw_pub ed25519_public.pem 32 | b64url)"},
    {"kty": "RSA", "kid": "rsa-enc", "use": "enc", "n": "$(rsa_n rsa2_public.pem)", "e": "AQAB"}
  ]
}
JSON

# Not a key at all, for the "bad PEM" tests.
printf -- '-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n' > garbage.pem
