#!/usr/bin/env bash
# Generates PEM material for Flink's SSL and SASL_SSL listeners with openssl, into DIR
# (default ./certs):
#   ca.pem                     the certificate authority clients and brokers trust
#   broker.pem                 a broker's private key and certificate chain (ssl.keystore.location)
#   broker-key.pem, broker-cert.pem   the same, apart (ssl.keystore.key / .certificate.chain)
#   client.pem, client-key.pem, client-cert.pem   a client certificate (CN=client) for
#                              ssl.client.auth=requested/required
# The broker certificate names every host in HOSTS (default "localhost 127.0.0.1"; add the
# compose service names, e.g. HOSTS="localhost 127.0.0.1 broker-1 broker-2 broker-3").
# Keys are unencrypted PKCS#8: protect the directory. For tests and examples; use your own CA
# in production.
set -euo pipefail

dir=${1:-certs}
hosts=${HOSTS:-localhost 127.0.0.1}
days=${DAYS:-825}
mkdir -p "$dir"
cd "$dir"

san=""
for host in $hosts; do
    if [[ $host =~ ^[0-9.]+$ ]]; then entry="IP:$host"; else entry="DNS:$host"; fi
    san="${san:+$san,}$entry"
done

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days "$days" \
    -subj "/CN=Flink test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

issue() {
    local name=$1 subject=$2 extensions=$3
    openssl req -newkey rsa:2048 -nodes -keyout "$name-key.pem" -out "$name.csr" \
        -subj "$subject" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -out "$name-cert.pem" -days "$days" -extfile <(printf '%s\n' "$extensions") 2>/dev/null
    rm -f "$name.csr"
    cat "$name-key.pem" "$name-cert.pem" > "$name.pem"
}

issue broker "/CN=${hosts%% *}" \
    "subjectAltName=$san
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
issue client "/CN=client/OU=test/O=Flink" \
    "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
rm -f ca.srl
echo "wrote ca.pem, broker.pem (key + chain), client.pem into $(pwd)"
