#!/bin/sh
# Makes the throw-away keys the tests use, once, in the directory given.
# Nothing here is ever a real key: they are generated on each machine.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: test-keys.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -f done ] && exit 0
umask 077
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2.pem 2>/dev/null
openssl pkey -in rsa.pem -traditional -out rsa-trad.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.pem 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem
openssl pkey -in ec.pem -traditional -out ec-sec1.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.pem
openssl genpkey -algorithm ED25519 -out ed.pem
openssl genpkey -algorithm ED448 -out ed448.pem
openssl pkey -in rsa.pem -aes256 -passout pass:secret -out enc.pem
openssl pkey -in rsa.pem -pubout -out rsa-pub.pem
openssl pkey -in ec.pem -pubout -out ec-pub.pem
openssl pkey -in ed.pem -pubout -out ed-pub.pem
printf 'not a key\n' > garbage.pem
base64 -w0 rsa.pem > rsa.b64
cp rsa.pem rsa-readable.pem && chmod 644 rsa-readable.pem
# the emulator's credentials (t/emulator/config.example.json) and wrong ones
printf 'project-test-00000000-0000-0000-0000-000000000000:secret-test-emulator-not-a-real-secret-000000\n' > creds
printf 'project-test-00000000-0000-0000-0000-000000000000:wrong-secret\n' > bad-creds
cp creds creds-readable && chmod 644 creds-readable
# an RSA key whose modulus is not p*q (found by fuzz/fuzz_keyload)
cp "$here/fuzz/corpus/fuzz_keyload/regress-inconsistent-rsa-modulus.pem" inconsistent.pem
touch done
