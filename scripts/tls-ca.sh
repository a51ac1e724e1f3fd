#!/usr/bin/env bash
# A private certificate authority and a server certificate signed by it, for
# local clusters and tests (openssl, ECDSA P-256). Production deployments use
# their own CA or a public one; see docs/SECURITY.md.
#   scripts/tls-ca.sh DIR [NAME [HOST...]]
# Makes DIR/ca.pem + DIR/ca.key (kept when present, so several certificates
# share one CA) and DIR/NAME.pem + DIR/NAME.key (NAME defaults to "server")
# valid for every HOST: IP addresses and DNS names (default: 127.0.0.1 ::1
# localhost). Keys are mode 600; clients trust DIR/ca.pem (--ca-file).
set -euo pipefail
DIR=${1:?usage: tls-ca.sh DIR [NAME [HOST...]]}
NAME=${2:-server}
shift $(($# < 2 ? $# : 2))
[ $# -gt 0 ] || set -- 127.0.0.1 ::1 localhost
case $NAME in
    *[!A-Za-z0-9_-]* | ca) echo "tls-ca.sh: bad certificate name '$NAME'" >&2; exit 2 ;;
esac
mkdir -p "$DIR"
umask 077

SAN=""
for h in "$@"; do
    if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then SAN="$SAN,IP:$h"; else SAN="$SAN,DNS:$h"; fi
done
SAN=${SAN#,}

if [ ! -f "$DIR/ca.pem" ] || [ ! -f "$DIR/ca.key" ]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$DIR/ca.key" -out "$DIR/ca.pem" -days 3650 -subj "/CN=chat local CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
fi
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$DIR/$NAME.key" -out "$DIR/$NAME.csr" -subj "/CN=$1" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
    "$SAN" >"$DIR/$NAME.ext"
openssl x509 -req -in "$DIR/$NAME.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
    -out "$DIR/$NAME.pem" -days 825 -sha256 -extfile "$DIR/$NAME.ext" 2>/dev/null
rm -f "$DIR/$NAME.csr" "$DIR/$NAME.ext"
chmod 644 "$DIR/ca.pem" "$DIR/$NAME.pem"
echo "$DIR/$NAME.pem ($SAN), CA $DIR/ca.pem"
