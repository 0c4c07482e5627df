#!/usr/bin/env bash
# Regenerates the certificatePolicies and SHA-1 chains used by attestation/tests/ek_chain.rs (OpenSSL 3).
#
# Like ../ekchain/make.sh: new keys on every run (names, validity, algorithms and extensions stay), private keys
# deleted, fixed validity so tests use a fixed verification time (2027-01-01).
set -euo pipefail

OUT=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"

START=20260101000000Z
END=20360101000000Z
LEAF_END=20300101000000Z

cat >ca.cnf <<'CNF'
[ca]
default_ca = ca_default
[ca_default]
database = index.txt
new_certs_dir = new
serial = serial
default_md = sha256
policy = policy_any
unique_subject = no
preserve = yes
[policy_any]
commonName = supplied
[req]
distinguished_name = dn
prompt = no
string_mask = utf8only
[dn]
CN = unused
[v3_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
# STMicro's intermediates: critical certificatePolicies anyPolicy.
[v3_int_any_policy]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign
certificatePolicies = critical, 2.5.29.32.0
# A policyConstraints extension (requireExplicitPolicy) is not processed: refused.
[v3_int_policy_constraints]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign
certificatePolicies = critical, 2.5.29.32.0
policyConstraints = critical, requireExplicitPolicy:0
[v3_int]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign
[tpm_dn]
0.2.23.133.2.1 = id:00001014
0.2.23.133.2.2 = runtrust-test
0.2.23.133.2.3 = id:00000001
# TCG EK Credential Profile EK certificate with a critical certificatePolicies: an explicit policy with a CPS
# pointer and a user notice (qualifiers are ignored), as Intel's and Infineon's CAs carry.
[v3_ek_policies]
subjectAltName = critical, dirName:tpm_dn
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyEncipherment
extendedKeyUsage = 2.23.133.8.1
certificatePolicies = critical, @tcg_policy
[tcg_policy]
policyIdentifier = 1.2.840.113741.1.5.2.1
CPS.1 = "http://example.invalid/ek-cps.pdf"
userNotice.1 = @notice
[notice]
explicitText = "TCG trusted platform module endorsement"
[v3_ek]
subjectAltName = critical, dirName:tpm_dn
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyEncipherment
extendedKeyUsage = 2.23.133.8.1
CNF
mkdir new
: >index.txt
echo 2000 >serial

key() { # key <file> <rsa|p256>
    case $2 in
        rsa) openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" ;;
        p256) openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" ;;
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

key root.key rsa
sign root "runtrust test policy root" root.key self root.key v3_root $END
key ek.key rsa

# certificatePolicies: anyPolicy on the intermediate, an explicit policy with qualifiers on the EK.
key int-any.key rsa
sign int-any-policy "runtrust test intermediate anyPolicy" int-any.key root.pem root.key v3_int_any_policy $END
sign ek-policies "runtrust test EK with policies" ek.key int-any-policy.pem int-any.key v3_ek_policies $LEAF_END

# policyConstraints on an intermediate.
key int-pc.key rsa
sign int-policy-constraints "runtrust test intermediate policyConstraints" int-pc.key root.pem root.key \
    v3_int_policy_constraints $END
sign ek-under-policy-constraints "runtrust test EK under policyConstraints" ek.key int-policy-constraints.pem \
    int-pc.key v3_ek $LEAF_END

# SHA-1: an intermediate SHA-1-signed by the root (the EK under it is sha256), an EK SHA-1-signed by the root
# (PKCS #1 v1.5 and RSASSA-PSS), SHA-1-self-signed roots (RSA and ECDSA).
key int-sha1.key rsa
sign int-sha1 "runtrust test intermediate SHA-1" int-sha1.key root.pem root.key v3_int $END -md sha1
sign ek-under-int-sha1 "runtrust test EK under SHA-1 intermediate" ek.key int-sha1.pem int-sha1.key v3_ek $LEAF_END
sign ek-sha1 "runtrust test EK SHA-1" ek.key root.pem root.key v3_ek $LEAF_END -md sha1
sign ek-pss-sha1 "runtrust test EK PSS SHA-1" ek.key root.pem root.key v3_ek $LEAF_END -md sha1 \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest
key root-sha1.key rsa
sign root-sha1 "runtrust test root SHA-1" root-sha1.key self root-sha1.key v3_root $END -md sha1
key root-ec-sha1.key p256
sign root-ec-sha1 "runtrust test root ecdsa-with-SHA1" root-ec-sha1.key self root-ec-sha1.key v3_root $END -md sha1

# Sanity: with policy checking on (-policy_check), OpenSSL accepts the policy chain and, under
# requireExplicitPolicy, refuses the EK that has no policy.
v() { openssl verify -attime 1798761600 -x509_strict -policy_check "$@" 2>&1; } # 2027-01-01
v -CAfile root.pem -untrusted int-any-policy.pem ek-policies.pem | grep -q ': OK$' \
    || { echo "make.sh: openssl refuses ek-policies" >&2; exit 1; }
if v -CAfile root.pem -untrusted int-policy-constraints.pem ek-under-policy-constraints.pem | grep -q ': OK$'; then
    echo "make.sh: openssl accepts ek-under-policy-constraints" >&2
    exit 1
fi
echo "ekpolicy: regenerated $(ls "$OUT"/*.der | wc -l) certificates in $OUT"
