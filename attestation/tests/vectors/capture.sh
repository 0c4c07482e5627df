#!/usr/bin/env bash
# Regenerate the TPM 2.0 quote test vectors in this directory from a fresh
# swtpm instance, using tpm2-tools.  See README.md for a description of every
# output file.
#
# Requirements: swtpm + swtpm-tools (swtpm_setup, swtpm_localca, certtool),
# tpm2-tools 5.x with the "swtpm" TCTI (libtss2-tcti-swtpm), openssl, xxd.
# Works as root and as an unprivileged user: it never touches
# /var/lib/swtpm-localca or ~/.config, because it uses its own swtpm_setup /
# swtpm-localca configuration and CA state in a temporary directory.
#
# Usage: ./capture.sh [OUTDIR]      (OUTDIR defaults to the script's directory)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# Fixed 32-byte qualifying data (nonce) used for every quote.
# = sha256("runtrust test vector nonce")
NONCE="$(printf 'runtrust test vector nonce' | sha256sum | cut -d' ' -f1)"

for tool in swtpm swtpm_setup swtpm_localca tpm2_createek tpm2_createak \
            tpm2_quote tpm2_checkquote tpm2_pcrread tpm2_pcrextend \
            tpm2_nvread tpm2_nvreadpublic tpm2_getcap tpm2_flushcontext tpm2_print \
            tpm2_readpublic tpm2_verifysignature openssl xxd sha1sum sha256sum; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# Absolute path required: swtpm --daemon chdir()s to "/", so a relative
# --tpmstate dir makes libtpms fail to write its state and enter failure mode.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-vectors.XXXXXX")"
WORK="$(cd "$WORK" && pwd)"
SWTPM_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$SWTPM_PID" ]] && kill -0 "$SWTPM_PID" 2>/dev/null; then
        kill "$SWTPM_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SWTPM_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

log() { echo "[capture] $*" >&2; }

# --------------------------------------------------------------------------
# 1. Private swtpm_setup + swtpm_localca configuration (no system state used)
# --------------------------------------------------------------------------
STATE="$WORK/state"
CA="$WORK/localca"
mkdir -p "$STATE" "$CA"
cat >"$WORK/swtpm-localca.conf" <<EOF
statedir = $CA
signingkey = $CA/signkey.pem
issuercert = $CA/issuercert.pem
certserial = $CA/certserial
EOF
cat >"$WORK/swtpm-localca.options" <<EOF
--platform-manufacturer runtrust
--platform-version 2.1
--platform-model swtpm
EOF
cat >"$WORK/swtpm_setup.conf" <<EOF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $WORK/swtpm-localca.conf
create_certs_tool_options = $WORK/swtpm-localca.options
active_pcr_banks = sha1,sha256
EOF

log "swtpm_setup ..."
# sha1 is NOT active by default (swtpm 0.7 default: sha256 only); activate it
# explicitly so that a multi-bank quote can be produced.
swtpm_setup --tpm2 --tpmstate "$STATE" \
    --config "$WORK/swtpm_setup.conf" \
    --create-ek-cert --create-platform-cert \
    --pcr-banks sha1,sha256 \
    --overwrite >"$WORK/swtpm_setup.log" 2>&1 \
    || { cat "$WORK/swtpm_setup.log" >&2; exit 1; }

# --------------------------------------------------------------------------
# 2. Start swtpm on free loopback ports (retry on bind failure)
# --------------------------------------------------------------------------
PORT=""
for _ in $(seq 20); do
    p=$(( 20000 + (RANDOM % 20000) * 2 ))
    rm -f "$WORK/swtpm.pid"
    if swtpm socket --tpm2 --tpmstate dir="$STATE" \
        --server type=tcp,port="$p",bindaddr=127.0.0.1 \
        --ctrl type=tcp,port="$((p + 1))",bindaddr=127.0.0.1 \
        --flags not-need-init,startup-clear \
        --pid file="$WORK/swtpm.pid" \
        --log file="$WORK/swtpm.log",level=1 \
        --daemon 2>>"$WORK/swtpm.err"; then
        for _ in $(seq 50); do [[ -s "$WORK/swtpm.pid" ]] && break; sleep 0.1; done
        SWTPM_PID="$(cat "$WORK/swtpm.pid")"
        PORT="$p"
        break
    fi
done
[[ -n "$PORT" ]] || { cat "$WORK/swtpm.err" >&2; echo "could not start swtpm" >&2; exit 1; }
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$PORT"
log "swtpm pid $SWTPM_PID on 127.0.0.1:$PORT (ctrl $((PORT + 1)))"

# No resource manager: flush transient objects/sessions between steps.
flush() { tpm2_flushcontext -t >/dev/null 2>&1 || true; tpm2_flushcontext -s >/dev/null 2>&1 || true; }

# --------------------------------------------------------------------------
# 3. Extend PCRs 0..7 in every active bank with deterministic data
# --------------------------------------------------------------------------
BANKS="$(tpm2_getcap pcrs | sed -n 's/^ *- *\([a-z0-9_]*\): *\[ *[0-9].*/\1/p' | tr '\n' ' ')"
log "active PCR banks: $BANKS"
has_bank() { [[ " $BANKS " == *" $1 "* ]]; }
for i in 0 1 2 3 4 5 6 7; do
    spec=""
    for b in $BANKS; do
        case "$b" in
            sha1) d="$(printf 'runtrust pcr %d' "$i" | sha1sum | cut -d' ' -f1)";;
            sha256) d="$(printf 'runtrust pcr %d' "$i" | sha256sum | cut -d' ' -f1)";;
            sha384) d="$(printf 'runtrust pcr %d' "$i" | sha384sum | cut -d' ' -f1)";;
            sha512) d="$(printf 'runtrust pcr %d' "$i" | sha512sum | cut -d' ' -f1)";;
            *) continue;;
        esac
        spec="${spec:+$spec,}$b=$d"
    done
    tpm2_pcrextend "$i:$spec"
    # extend PCR 1 and 4 a second time, so not every PCR is a single extend
    if [[ $i == 1 || $i == 4 ]]; then tpm2_pcrextend "$i:$spec"; fi
done

# pcrs.json from tpm2_pcrread text output, e.g.
#   sha256:
#     0 : 0x3D45...
pcrread_json() { # $1 = pcr selection, $2 = output file
    tpm2_pcrread "$1" | awk '
        /^ *[a-z0-9_]+:$/ { gsub(/[ :]/, "", $1); bank = $1; nb++; banks[nb] = bank; next }
        /^ *[0-9]+ *: *0x[0-9A-Fa-f]+/ {
            idx = $1; val = $3; sub(/^0x/, "", val);
            n[bank]++; k[bank, n[bank]] = idx; v[bank, n[bank]] = tolower(val) }
        END {
            printf "{";
            for (i = 1; i <= nb; i++) {
                b = banks[i]; printf "%s\n  \"%s\": {", (i > 1 ? "," : ""), b;
                for (j = 1; j <= n[b]; j++)
                    printf "%s\n    \"%s\": \"%s\"", (j > 1 ? "," : ""), k[b, j], v[b, j];
                printf "\n  }";
            }
            printf "\n}\n";
        }' >"$2"
}

# --------------------------------------------------------------------------
# 4. EK certificates and EK public areas
# --------------------------------------------------------------------------
EKDIR="$OUT/ekcerts"
rm -rf "$EKDIR"; mkdir -p "$EKDIR"
tpm2_getcap handles-nv-index >"$WORK/nv.txt"
tpm2_getcap handles-persistent >"$WORK/persistent.txt"
log "NV indices: $(tr '\n' ' ' <"$WORK/nv.txt")"

nv_present() { grep -qi "^- *$1\$" "$WORK/nv.txt"; }
save_cert() { # $1 NV index, $2 output basename
    tpm2_nvread "$1" -o "$EKDIR/$2.der" 2>/dev/null
    openssl x509 -inform der -in "$EKDIR/$2.der" -noout >/dev/null
}
# RSA 2048 EK cert, TCG low range (template L-1)
save_cert 0x01c00002 ek-rsa
tpm2_createek -G rsa -c "$WORK/ek-rsa.ctx" -u "$EKDIR/ek-rsa.pub" >/dev/null
flush
# ECC EK cert: swtpm 0.7.1 creates a NIST P-384 EK (TCG high-range template
# H-3, persistent handle 0x81010016) with its cert in NV 0x01c00016.  The
# low-range P-256 index 0x01c0000a is used if present (other swtpm versions).
if nv_present 0x1C0000A; then
    save_cert 0x01c0000a ek-ecc
    tpm2_createek -G ecc -c "$WORK/ek-ecc.ctx" -u "$EKDIR/ek-ecc.pub" >/dev/null
    EK_ECC_ALG=ecc
elif nv_present 0x1C00016; then
    save_cert 0x01c00016 ek-ecc
    tpm2_createek -G ecc384 -c "$WORK/ek-ecc.ctx" -u "$EKDIR/ek-ecc.pub" >/dev/null
    EK_ECC_ALG=ecc384
else
    log "no ECC EK certificate in NV"; EK_ECC_ALG=""
fi
flush
# Platform certificate created by --create-platform-cert (NV 0x01c08000)
if nv_present 0x1C08000; then save_cert 0x01c08000 platform; fi
# Local CA chain (public certs only; the private keys stay in $WORK)
openssl x509 -in "$CA/swtpm-localca-rootca-cert.pem" -outform der -out "$EKDIR/ca-root.der"
openssl x509 -in "$CA/issuercert.pem" -outform der -out "$EKDIR/ca-intermediate.der"
# Sanity: chain verifies, EK cert public keys equal the EK public areas
openssl x509 -inform der -in "$EKDIR/ca-root.der" -out "$WORK/root.pem"
openssl x509 -inform der -in "$EKDIR/ca-intermediate.der" -out "$WORK/int.pem"
for c in ek-rsa ek-ecc platform; do
    [[ -f "$EKDIR/$c.der" ]] || continue
    openssl x509 -inform der -in "$EKDIR/$c.der" -out "$WORK/$c.pem"
    openssl verify -CAfile "$WORK/root.pem" -untrusted "$WORK/int.pem" "$WORK/$c.pem" >/dev/null
done
for c in ek-rsa ek-ecc; do
    [[ -f "$EKDIR/$c.der" ]] || continue
    # tpm2_createek re-derives the EK from the EPS: it must be the certified key
    tpm2_readpublic -c "$WORK/$c.ctx" -f pem -o "$WORK/$c.tpm.pem" >/dev/null
    flush
    openssl x509 -in "$WORK/$c.pem" -noout -pubkey | openssl pkey -pubin -outform der >"$WORK/$c.cert.spki"
    openssl pkey -pubin -in "$WORK/$c.tpm.pem" -outform der >"$WORK/$c.tpm.spki"
    cmp -s "$WORK/$c.cert.spki" "$WORK/$c.tpm.spki" \
        || { echo "$c: EK certificate key != tpm2_createek public key" >&2; exit 1; }
done
{
    echo "# NV indices (tpm2_getcap handles-nv-index)"; cat "$WORK/nv.txt"
    echo "# persistent handles (tpm2_getcap handles-persistent)"; cat "$WORK/persistent.txt"
    for i in $(sed 's/^- *//' "$WORK/nv.txt"); do tpm2_nvreadpublic "$i"; done
} >"$EKDIR/nv-info.txt"

# --------------------------------------------------------------------------
# 5. AKs, quotes, verification
# --------------------------------------------------------------------------
hash_len() { case "$1" in sha1) echo 20;; sha256) echo 32;; sha384) echo 48;; sha512) echo 64;; esac; }

# Checks that do not rely on tpm2_checkquote: extraData == nonce and
# pcrDigest == H(concatenation of the quoted PCR values in pcrs.values),
# where H is the quote's signing hash.
independent_check() { # name hash
    local d="$OUT/$1" g=$2 info extra digest calc
    info="$(tpm2_print -t TPMS_ATTEST "$d/attest")"
    grep -q '^magic: ff544347$' <<<"$info"
    grep -q '^type: 8018$' <<<"$info"
    extra="$(sed -n 's/^extraData: *//p' <<<"$info")"
    digest="$(sed -n 's/^ *pcrDigest: *//p' <<<"$info")"
    calc="$(openssl dgst -"$g" -r "$d/pcrs.values" | cut -d' ' -f1)"
    [[ "$extra" == "$NONCE" ]] || { echo "$1: extraData $extra != nonce" >&2; exit 1; }
    [[ "$digest" == "$calc" ]] || { echo "$1: pcrDigest $digest != $g(pcrs.values) $calc" >&2; exit 1; }
    # pcrs.json (from tpm2_pcrread) must list the same values in the same order
    [[ "$(grep -o '"[0-9a-f]\{40,\}"' "$d/pcrs.json" | tr -d '"\n')" == "$(xxd -p "$d/pcrs.values" | tr -d '\n')" ]] \
        || { echo "$1: pcrs.json does not match pcrs.values" >&2; exit 1; }
}

make_vector() { # name ek-ctx ak-G ak-g ak-s pcr-selection
    local name=$1 ekctx=$2 G=$3 g=$4 s=$5 sel=$6 d="$OUT/$1"
    log "vector $name: AK -G $G -g $g -s $s, quote over $sel"
    rm -rf "$d"; mkdir -p "$d"
    flush
    tpm2_createak -C "$ekctx" -c "$WORK/$name.ak.ctx" -G "$G" -g "$g" -s "$s" \
        -u "$d/ak.pub" -n "$d/ak.name" >"$WORK/$name.createak.yaml"
    flush
    printf '%s\n' "$NONCE" >"$d/nonce.hex"
    # NOTE: --scheme is required for the rsapss AK: without it tpm2_quote
    # asks for the RSA default (rsassa) and the TPM fails with
    # TPM_RC_SCHEME (0x2d2) because the key's scheme is fixed to rsapss.
    tpm2_quote -c "$WORK/$name.ak.ctx" -l "$sel" -q "$NONCE" -g "$g" --scheme "$s" \
        -m "$d/attest" -s "$d/signature" -o "$d/pcrs.bin" -F serialized \
        >"$WORK/$name.quote.yaml"
    flush
    # same selection again with -F values (attest/signature of this 2nd
    # quote are discarded; PCRs did not change in between)
    tpm2_quote -c "$WORK/$name.ak.ctx" -l "$sel" -q "$NONCE" -g "$g" --scheme "$s" \
        -m "$WORK/$name.attest2" -s "$WORK/$name.sig2" -o "$d/pcrs.values" -F values \
        >/dev/null
    flush
    pcrread_json "$sel" "$d/pcrs.json"
    independent_check "$name" "$g"
    if [[ $s == rsapss ]]; then
        # tpm2-tools 5.4 tpm2_checkquote cannot verify RSASSA-PSS quotes
        # (always "Verify signature failed", see tpm2-tools issue #3283).
        # Verify the signature with openssl (salt length = digest length,
        # which is what libtpms uses) and with the TPM itself instead.
        if tpm2_checkquote -u "$d/ak.pub" -m "$d/attest" -s "$d/signature" \
            -f "$d/pcrs.bin" -g "$g" -q "$NONCE" >/dev/null 2>&1; then
            log "$name: tpm2_checkquote OK"
        else
            log "$name: tpm2_checkquote FAILED (known tpm2-tools 5.4 RSAPSS limitation); using openssl + tpm2_verifysignature"
        fi
        tpm2_readpublic -c "$WORK/$name.ak.ctx" -f pem -o "$WORK/$name.ak.pem" >/dev/null
        flush
        tail -c +7 "$d/signature" >"$WORK/$name.sig.raw"   # skip sigAlg|hash|size
        openssl dgst -"$g" -verify "$WORK/$name.ak.pem" \
            -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:"$(hash_len "$g")" \
            -signature "$WORK/$name.sig.raw" "$d/attest" >/dev/null
        tpm2_verifysignature -c "$WORK/$name.ak.ctx" -g "$g" -m "$d/attest" \
            -s "$d/signature" >/dev/null
        flush
    else
        tpm2_checkquote -u "$d/ak.pub" -m "$d/attest" -s "$d/signature" \
            -f "$d/pcrs.bin" -g "$g" -q "$NONCE" >"$WORK/$name.checkquote.yaml"
        # negative check: a different nonce must be rejected
        if tpm2_checkquote -u "$d/ak.pub" -m "$d/attest" -s "$d/signature" \
            -f "$d/pcrs.bin" -g "$g" -q "00$NONCE" >/dev/null 2>&1; then
            echo "checkquote accepted a wrong nonce for $name" >&2; exit 1
        fi
    fi
    # quote.yaml contains the PCR values and the signature as tpm2_quote printed them
    cp "$WORK/$name.quote.yaml" "$d/quote.yaml"
}

# Parent EKs.  NOTE: tpm2_createak (5.4) gives the AK the *EK's* nameAlg, so
# an AK under swtpm's P-384 EK (nameAlg sha384) gets a sha384 name.  Use the
# standard low-range P-256 EK (template L-2, nameAlg sha256; swtpm has no
# certificate for it) as parent of the P-256 AK, and the certified P-384 EK
# as parent of the P-384 AK.
EK_RSA="$WORK/ek-rsa.ctx"
tpm2_createek -G ecc -c "$WORK/ek-ecc256.ctx" -u "$WORK/ek-ecc256.pub" >/dev/null
flush
EK_ECC256="$WORK/ek-ecc256.ctx"
if [[ $EK_ECC_ALG == ecc384 ]]; then EK_ECC384="$WORK/ek-ecc.ctx"; else EK_ECC384="$EK_ECC256"; fi
SEL256="sha256:0,1,2,3,4,5,6,7"

make_vector rsa    "$EK_RSA"    rsa    sha256 rsassa "$SEL256"
make_vector ecc    "$EK_ECC256" ecc    sha256 ecdsa  "$SEL256"
make_vector rsapss "$EK_RSA"    rsa    sha256 rsapss "$SEL256"
make_vector ecc384 "$EK_ECC384" ecc384 sha384 ecdsa  "$SEL256"
if has_bank sha1; then
    make_vector rsa-multibank "$EK_RSA" rsa sha256 rsassa "sha1:0,1,2+sha256:0,1,2"
else
    log "sha1 bank not active: skipping rsa-multibank"
    rm -rf "$OUT/rsa-multibank"
fi

chmod 0644 "$EKDIR"/* "$OUT"/{rsa,ecc,rsapss,ecc384,rsa-multibank}/* 2>/dev/null || true
log "done; vectors in $OUT"
