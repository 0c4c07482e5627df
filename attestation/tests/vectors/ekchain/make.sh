#!/usr/bin/env bash
# Regenerates the synthetic certificate chains used by attestation/tests/ek_chain.rs (OpenSSL 3).
#
# Every run makes new keys, so every certificate changes; names, validity periods, algorithms and extensions
# do not. Private keys live in a temporary directory and are deleted: only certificates are kept.
# Validity is fixed (not "now") with `openssl ca -startdate/-enddate`, so tests use a fixed verification time.
set -euo pipefail

OUT=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"

START=20260101000000Z      # notBefore of every certificate
END=20360101000000Z        # notAfter of the CAs
LEAF_END=20300101000000Z   # notAfter of the leaves (tests check expiry at 2031)

cat >ca.cnf <<CNF
[ca]
default_ca = ca_default
[ca_default]
database = $W/index.txt
new_certs_dir = $W/new
serial = $W/serial
default_md = sha256
policy = policy_any
unique_subject = no
preserve = yes
[policy_any]
commonName = supplied
organizationName = optional
[req]
distinguished_name = dn
prompt = no
string_mask = \$ENV::MASK
[dn]
CN = unused
[v3_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_root_pathlen0]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_int]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_notca]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyCertSign
authorityKeyIdentifier = keyid
[v3_no_keycertsign]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature
authorityKeyIdentifier = keyid
# TCG EK Credential Profile 2.x §3.2: critical SAN (directoryName: TPM manufacturer, model, version),
# critical basicConstraints CA:FALSE, critical keyUsage, EKU tcg-kp-EKCertificate.
[tpm_dn]
0.2.23.133.2.1 = id:00001014
0.2.23.133.2.2 = runtrust-test
0.2.23.133.2.3 = id:00000001
[v3_ek_rsa]
subjectAltName = critical, dirName:tpm_dn
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyEncipherment
extendedKeyUsage = 2.23.133.8.1
authorityKeyIdentifier = keyid
[v3_ek_ecc]
subjectAltName = critical, dirName:tpm_dn
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyAgreement
extendedKeyUsage = 2.23.133.8.1
authorityKeyIdentifier = keyid
[v3_ek_unknown_critical]
subjectAltName = critical, dirName:tpm_dn
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyEncipherment
extendedKeyUsage = 2.23.133.8.1
1.3.6.1.4.1.55555.1 = critical, ASN1:NULL
CNF
export MASK=utf8only # names as UTF8String, except where a test needs PrintableString
mkdir new
: >index.txt
echo 1000 >serial

key() { # key <file> <rsa|p256|p384>
    case $2 in
        rsa) openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" ;;
        p256) openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" ;;
        p384) openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$1" ;;
    esac
}

# sign <out> <subject CN> <key> <issuer cert|self> <issuer key> <extensions> <end> [extra openssl ca args...]
sign() {
    local out=$1 cn=$2 k=$3 issuer=$4 ikey=$5 ext=$6 end=$7
    shift 7
    openssl req -new -config ca.cnf -key "$k" -subj "/CN=$cn" -out "$out.csr"
    if [ "$issuer" = self ]; then
        set -- -selfsign "$@"
    else
        set -- -cert "$issuer" "$@"
    fi
    if ! openssl ca -config ca.cnf -batch -notext -keyfile "$ikey" -in "$out.csr" -startdate $START \
        -enddate "$end" -extensions "$ext" -out "$out.pem" "$@" 2>ca.log; then
        cat ca.log >&2
        exit 1
    fi
    openssl x509 -in "$out.pem" -outform der -out "$OUT/$out.der"
}

PSS256=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -md sha256)

# RSA root (sha256WithRSAEncryption) and what it signs directly.
key root-rsa.key rsa
sign root-rsa "runtrust test root RSA" root-rsa.key self root-rsa.key v3_root $END
key ek-rsa.key rsa
sign ek-rsa-pss "runtrust test EK RSA PSS-SHA256" ek-rsa.key root-rsa.pem root-rsa.key v3_ek_rsa $LEAF_END "${PSS256[@]}"
sign ek-rsa-pss384 "runtrust test EK RSA PSS-SHA384" ek-rsa.key root-rsa.pem root-rsa.key v3_ek_rsa $LEAF_END \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -md sha384
sign ek-rsa-pss-salt20 "runtrust test EK RSA PSS salt 20" ek-rsa.key root-rsa.pem root-rsa.key v3_ek_rsa $LEAF_END \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:20 -md sha256
sign ek-rsa-critical "runtrust test EK unknown critical extension" ek-rsa.key root-rsa.pem root-rsa.key \
    v3_ek_unknown_critical $LEAF_END

# An issuer that is not a CA (basicConstraints CA:FALSE), and a CA whose keyUsage lacks keyCertSign.
key notca.key rsa
sign notca "runtrust test not a CA" notca.key root-rsa.pem root-rsa.key v3_notca $END
sign ek-under-notca "runtrust test EK under non-CA" ek-rsa.key notca.pem notca.key v3_ek_rsa $LEAF_END
key nokcs.key rsa
sign no-keycertsign "runtrust test CA without keyCertSign" nokcs.key root-rsa.pem root-rsa.key v3_no_keycertsign $END
sign ek-under-no-keycertsign "runtrust test EK under no keyCertSign" ek-rsa.key no-keycertsign.pem nokcs.key \
    v3_ek_rsa $LEAF_END

# pathLenConstraint 0 on the root, violated by one intermediate CA below it.
key root-pl0.key rsa
sign root-pathlen0 "runtrust test root pathlen 0" root-pl0.key self root-pl0.key v3_root_pathlen0 $END
key int-pl.key rsa
sign int-under-pathlen0 "runtrust test intermediate under pathlen 0" int-pl.key root-pathlen0.pem root-pl0.key \
    v3_int $END
sign ek-under-pathlen0 "runtrust test EK below pathlen 0" ek-rsa.key int-under-pathlen0.pem int-pl.key v3_ek_rsa \
    $LEAF_END

# ECDSA chain: P-384 root (ecdsa-with-SHA384) -> P-256 intermediate (signed with SHA-384) -> P-256 EK
# (ecdsa-with-SHA256).
key root-ec.key p384
sign root-ec "runtrust test root P-384" root-ec.key self root-ec.key v3_root $END -md sha384
key int-ec.key p256
sign int-ec "runtrust test intermediate P-256" int-ec.key root-ec.pem root-ec.key v3_int $END -md sha384
key ek-ec.key p256
sign ek-ec "runtrust test EK P-256" ek-ec.key int-ec.pem int-ec.key v3_ek_ecc $LEAF_END -md sha256

# Same subject as swtpm's issuing CA (CN=swtpm-localca, a PrintableString), different key: an impostor anchor.
key impostor.key rsa
MASK=default sign impostor-swtpm-localca "swtpm-localca" impostor.key self impostor.key v3_root $END
# The same name as a UTF8String: it reads the same but is not the same DER Name.
sign utf8-swtpm-localca "swtpm-localca" impostor.key self impostor.key v3_root $END

# A root that expired (2026-06-01) before the EK certificate it issued (valid to 2030).
key root-exp.key rsa
sign root-expired "runtrust test root expired" root-exp.key self root-exp.key v3_root 20260601000000Z
sign ek-under-expired-root "runtrust test EK under expired root" ek-rsa.key root-expired.pem root-exp.key v3_ek_rsa \
    $LEAF_END

# Two CAs that certify each other (a loop), and an EK certificate under one of them.
key loop-a.key rsa
key loop-b.key rsa
sign loop-b-self "runtrust test loop B" loop-b.key self loop-b.key v3_root $END
rm "$OUT/loop-b-self.der"
sign loop-a "runtrust test loop A" loop-a.key loop-b-self.pem loop-b.key v3_int $END
sign loop-b "runtrust test loop B" loop-b.key loop-a.pem loop-a.key v3_int $END
sign ek-under-loop "runtrust test EK under loop" ek-rsa.key loop-a.pem loop-a.key v3_ek_rsa $LEAF_END

# A long chain: root-rsa -> long-1 -> ... -> long-7 -> EK (9 certificates with the anchor).
prev=root-rsa
for i in 1 2 3 4 5 6 7; do
    key long-$i.key rsa
    sign long-$i "runtrust test long $i" long-$i.key $prev.pem $prev.key v3_int $END
    prev=long-$i
done
sign ek-under-long "runtrust test EK under long chain" ek-rsa.key long-7.pem long-7.key v3_ek_rsa $LEAF_END

# A PEM bundle of two anchors, with the text openssl puts between blocks.
{
    echo "subject=CN = runtrust test root RSA"
    cat root-rsa.pem
    echo
    echo "subject=CN = runtrust test root P-384"
    cat root-ec.pem
} >"$OUT/roots.pem"

# Sanity: OpenSSL agrees with what the tests expect.
v() { openssl verify -attime 1798761600 -x509_strict "$@" 2>&1; } # 2027-01-01
D=$OUT
pem() { openssl x509 -inform der -in "$D/$1.der"; }
pem root-rsa >r.pem; pem root-ec >re.pem; pem int-ec >ie.pem; pem root-pathlen0 >r0.pem
pem int-under-pathlen0 >i0.pem; pem notca >nc.pem; pem no-keycertsign >nk.pem
ok() { v "$@" | grep -q ': OK$' || { echo "make.sh: openssl verify $* failed" >&2; exit 1; }; }
bad() { if v "$@" | grep -q ': OK$'; then echo "make.sh: openssl verify $* unexpectedly passed" >&2; exit 1; fi; }
for c in ek-rsa-pss ek-rsa-pss384 ek-rsa-pss-salt20; do pem $c >$c.pem; ok -CAfile r.pem $c.pem; done
pem ek-ec >c1.pem; ok -CAfile re.pem -untrusted ie.pem c1.pem
pem ek-under-pathlen0 >c2.pem; bad -CAfile r0.pem -untrusted i0.pem c2.pem
pem ek-under-notca >c3.pem; bad -CAfile r.pem -untrusted nc.pem c3.pem
pem ek-under-no-keycertsign >c4.pem; bad -CAfile r.pem -untrusted nk.pem c4.pem
pem ek-rsa-critical >c5.pem; bad -CAfile r.pem c5.pem
pem root-expired >rx.pem; pem ek-under-expired-root >c6.pem; bad -CAfile rx.pem c6.pem
cat long-[1-7].pem >longs.pem; pem ek-under-long >c7.pem; ok -CAfile r.pem -untrusted longs.pem c7.pem
echo "ekchain: regenerated $(ls "$OUT"/*.der | wc -l) certificates in $OUT"
