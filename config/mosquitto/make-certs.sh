#!/bin/sh
# Make a private CA, a broker certificate and one client certificate per identity.
#
#   make-certs.sh OUTDIR BROKER_HOST IDENTITY...
#
# e.g. make-certs.sh /etc/mosquitto/towerwatch broker.county.example hub t1 t2
# BROKER_HOST goes into the broker certificate's subjectAltName (a DNS name or an IP
# address). Each IDENTITY (a tower id, or "hub") gets IDENTITY.crt and IDENTITY.key with
# that Common Name, which the broker uses as the user name for its ACL. Keys are
# written with mode 0600: a tower refuses a key file its group or others may read.
# Copy ca.crt and t1.crt/t1.key to tower t1 (mqtt.tls.ca_file, mqtt.tls.cert_file and
# the secret named by mqtt.tls.key_secret); keep ca.key offline.
set -eu
[ $# -ge 3 ] || { echo "usage: $0 OUTDIR BROKER_HOST IDENTITY..." >&2; exit 2; }
out=$1 host=$2
shift 2
mkdir -p "$out"
umask 077
days=825
case $host in
  *[!0-9.]*) san="DNS:$host" ;;
  *) san="IP:$host" ;;
esac
if [ ! -f "$out/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$out/ca.key" -out "$out/ca.crt" -days "$days" -subj "/CN=towerwatch CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
fi
issue() {  # name, common name, extensions
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$out/$1.key" -out "$out/$1.csr" -subj "/CN=$2" 2>/dev/null
  printf '%s\n' "$3" > "$out/$1.ext"
  openssl x509 -req -in "$out/$1.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -out "$out/$1.crt" -days "$days" -extfile "$out/$1.ext" 2>/dev/null
  rm -f "$out/$1.csr" "$out/$1.ext"
}
issue broker "$host" "subjectAltName=$san
extendedKeyUsage=serverAuth"
for identity in "$@"; do
  issue "$identity" "$identity" "extendedKeyUsage=clientAuth"
done
chmod 644 "$out"/*.crt
