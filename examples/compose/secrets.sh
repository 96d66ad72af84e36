#!/usr/bin/env bash
# examples/compose/secrets.sh: makes the secrets of the compose example. NOT FOR PRODUCTION.
#
#   bash examples/compose/secrets.sh [DIR]       (default: examples/compose/secrets)
#
# Writes, for Envoy -> rkms over mutual TLS (openssl, ECDSA P-256, valid 30 days):
#   ca.pem                              the example CA: rkms trusts it for client certificates,
#                                       Envoy for rkms's server certificate (its key is deleted)
#   rkms.pem, rkms-key.pem              rkms's ext_proc server certificate, DNS name "rkms"
#   envoy-client.pem, envoy-client-key.pem   Envoy's client certificate, CN/DNS name "envoy"
# and, for the bearer tokens Envoy verifies (cmd/rkms-demo-token):
#   jwt/signing-key.pem, jwt/jwks.json  the token signing key (Ed25519) and its public JWKS
#
# Run it again to replace the certificates (the signing key is kept; delete DIR/jwt to replace
# it). Needs openssl 1.1.1 or later, and Go (go run ./cmd/rkms-demo-token) unless
# RKMS_DEMO_TOKEN names a built rkms-demo-token. The private keys are world-readable (0644):
# the containers run as other users than yours and read them through bind mounts. That, a CA key
# that is thrown away and certificates for fixed names are fine for an example on one machine,
# and wrong anywhere else: use your own PKI (or cert-manager: deploy/helm) and identity provider.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
DIR=${1:-secrets}
DAYS=30
mkdir -p "$DIR/jwt"
DIR=$(cd "$DIR" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

command -v openssl >/dev/null || {
	echo "secrets.sh: openssl is needed" >&2
	exit 1
}

# key NAME: a fresh P-256 key in NAME-key.pem.
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The CA, whose key lives only in $TMP.
key "$TMP/ca-key.pem"
openssl req -x509 -new -key "$TMP/ca-key.pem" -out "$DIR/ca.pem" -days "$DAYS" -sha256 \
	-subj "/O=rkms compose example (NOT FOR PRODUCTION)/CN=rkms compose example CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# issue NAME CN USAGE: NAME.pem and NAME-key.pem, signed by the CA, DNS name CN.
issue() {
	local name=$1 cn=$2 usage=$3
	key "$DIR/$name-key.pem"
	openssl req -new -key "$DIR/$name-key.pem" -out "$TMP/$name.csr" \
		-subj "/O=rkms compose example (NOT FOR PRODUCTION)/CN=$cn"
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=DNS:%s\n' \
		"$usage" "$cn" >"$TMP/$name.ext"
	openssl x509 -req -in "$TMP/$name.csr" -CA "$DIR/ca.pem" -CAkey "$TMP/ca-key.pem" -CAcreateserial \
		-CAserial "$TMP/ca.srl" -out "$DIR/$name.pem" -days "$DAYS" -sha256 -extfile "$TMP/$name.ext" 2>/dev/null
	chmod 0644 "$DIR/$name-key.pem" # read by the container's user, see above
}
issue rkms rkms serverAuth
issue envoy-client envoy clientAuth

# The token signing key and JWKS.
if [[ -n ${RKMS_DEMO_TOKEN:-} ]]; then
	"$RKMS_DEMO_TOKEN" init -dir "$DIR/jwt" >/dev/null
else
	(cd ../.. && go run ./cmd/rkms-demo-token init -dir "$DIR/jwt") >/dev/null
fi
chmod 0644 "$DIR/jwt/jwks.json"

cat <<EOF
secrets.sh: wrote $DIR (NOT FOR PRODUCTION)
  mutual TLS Envoy -> rkms: ca.pem, rkms.pem + rkms-key.pem, envoy-client.pem + envoy-client-key.pem
  bearer tokens: jwt/jwks.json for Envoy; mint one with
    go run ./cmd/rkms-demo-token mint -dir $DIR/jwt acme
EOF
