#!/usr/bin/env bash
# Proves runtrust's software TPM2_MakeCredential (attestation/src/credential.rs) against a real TPM:
# for an RSA-2048 EK, an ECC P-256 EK and an ECC P-384 EK of a private swtpm, the credential made by
# `cargo run --example make_credential` must be released by TPM2_ActivateCredential (tpm2-tools), and
# must not be released once tampered with or made for another Name. The layout is also compared with
# `tpm2_makecredential -T none` (tpm2-tools' own software MakeCredential).
#
# Requirements: swtpm + swtpm_setup (0.7), tpm2-tools 5.x with the swtpm TCTI, openssl, xxd, cargo.
# Usage: ./activate.sh [SAVE_DIR]
#   SAVE_DIR: keep, per EK kind, ek.pub, ak.name, secret.bin and tools.cred (tpm2_makecredential output).
# The example is built into ${CARGO_TARGET_DIR:-<workspace>/target}.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORKSPACE="$(cd "$HERE/../../.." && pwd)"
SAVE="${1:-}"

for tool in swtpm swtpm_setup tpm2_createek tpm2_createak tpm2_activatecredential tpm2_makecredential \
            tpm2_startauthsession tpm2_policysecret tpm2_policyor tpm2_flushcontext tpm2_print tpm2_rc_decode \
            openssl xxd cargo cmp; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

log() { echo "[activate] $*" >&2; }

PYTHON_KAT=""
if python3 -c 'import cryptography' 2>/dev/null; then
    PYTHON_KAT="$HERE/kat.py"
else
    log "python3 with pyca/cryptography not found: kat.py is not checked against the TPM"
fi

log "building the make_credential example ..."
(cd "$WORKSPACE" && cargo build -q -p runtrust-attestation --example make_credential)
MAKE_CREDENTIAL="${CARGO_TARGET_DIR:-$WORKSPACE/target}/debug/examples/make_credential"
[[ -x "$MAKE_CREDENTIAL" ]] || { echo "not built: $MAKE_CREDENTIAL" >&2; exit 1; }

# Absolute: swtpm --daemon chdir()s to "/".
WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-credential.XXXXXX")"
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

# --------------------------------------------------------------------------
# A private swtpm (no certificates needed: tpm2_createek re-derives the EKs)
# --------------------------------------------------------------------------
STATE="$WORK/state"
mkdir -p "$STATE"
: >"$WORK/swtpm_setup.conf"
swtpm_setup --tpm2 --tpmstate "$STATE" --config "$WORK/swtpm_setup.conf" --overwrite \
    >"$WORK/swtpm_setup.log" 2>&1 || { cat "$WORK/swtpm_setup.log" >&2; exit 1; }
PORT=""
for _ in $(seq 20); do
    p=$(( 20000 + (RANDOM % 20000) * 2 ))
    rm -f "$WORK/swtpm.pid"
    if swtpm socket --tpm2 --tpmstate dir="$STATE" \
        --server type=tcp,port="$p",bindaddr=127.0.0.1 \
        --ctrl type=tcp,port="$((p + 1))",bindaddr=127.0.0.1 \
        --flags not-need-init,startup-clear \
        --pid file="$WORK/swtpm.pid" --log file="$WORK/swtpm.log",level=1 \
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

# No resource manager: flush transient objects and sessions after every tool.
flush() { tpm2_flushcontext -t >/dev/null 2>&1 || true; tpm2_flushcontext -s >/dev/null 2>&1 || true; }

# TCG EK Credential Profile 2.x policy digests (SHA-384), for the high-range EK templates:
#   PolicyA = PolicySecret(TPM_RH_ENDORSEMENT); PolicyC = PolicyAuthorizeNV(0x01C07F02);
#   authPolicy (PolicyB) = PolicyOR(PolicyA, PolicyC).
POLICY_A_SHA384=8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3278c930e143e8bb1133824ccb431053871c6db53
POLICY_C_SHA384=d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d165
xxd -r -p <<<"$POLICY_A_SHA384" >"$WORK/policyA.sha384"
xxd -r -p <<<"$POLICY_C_SHA384" >"$WORK/policyC.sha384"

# activate KIND_DIR CRED OUT AUTH -> TPM2_ActivateCredential with the EK authorised by AUTH:
#   policy-sha256: PolicySecret(endorsement) in a SHA-256 policy session (low-range EK templates)
#   policy-sha384: PolicySecret(endorsement) + PolicyOR(PolicyA, PolicyC) in a SHA-384 session (H-3 P-384)
#   policy-sha384-noor: PolicySecret(endorsement) in a SHA-384 session, no PolicyOR
#   policy-sha256-on384: what 'policy-sha256' does, for probing the P-384 EK
#   password: the EK's (empty) authValue, usable only if the EK has userWithAuth
activate() {
    local d=$1 cred=$2 out=$3 auth=$4 ekauth="" rc=0
    rm -f "$out"
    flush
    case "$auth" in
        policy-sha256|policy-sha256-on384|policy-sha384|policy-sha384-noor)
            local g=sha256; [[ $auth == policy-sha384* ]] && g=sha384
            tpm2_startauthsession --policy-session -g "$g" -S "$d/session.ctx" >/dev/null
            tpm2_policysecret -S "$d/session.ctx" -c e >/dev/null
            if [[ $auth == policy-sha384 ]]; then
                tpm2_policyor -S "$d/session.ctx" "sha384:$WORK/policyA.sha384,$WORK/policyC.sha384" >/dev/null
            fi
            ekauth="session:$d/session.ctx"
            ;;
        password) ekauth="" ;;
        *) echo "unknown auth $auth" >&2; exit 1 ;;
    esac
    tpm2_activatecredential -c "$d/ak.ctx" -C "$d/ek.ctx" -i "$cred" -o "$out" -P "$ekauth" \
        >"$d/activate.log" 2>&1 || rc=$?
    flush
    return "$rc"
}

# expect_released KIND_DIR CRED SECRET AUTH WHAT
expect_released() {
    local d=$1 cred=$2 secret=$3 auth=$4 what=$5
    if ! activate "$d" "$cred" "$d/out.bin" "$auth"; then
        cat "$d/activate.log" >&2; echo "FAIL: $what: TPM2_ActivateCredential failed" >&2; exit 1
    fi
    cmp -s "$d/out.bin" "$secret" || { echo "FAIL: $what: released secret differs" >&2; exit 1; }
    log "  OK   $what ($auth): TPM released the $(stat -c %s "$secret")-byte secret"
}

# expect_refused KIND_DIR CRED AUTH WHAT
expect_refused() {
    local d=$1 cred=$2 auth=$3 what=$4
    if activate "$d" "$cred" "$d/out.bin" "$auth"; then
        echo "FAIL: $what: TPM2_ActivateCredential succeeded" >&2; exit 1
    fi
    local rc
    rc="$(grep -o 'ErrorCode (0x[0-9a-fA-F]*)' "$d/activate.log" | head -1 | grep -o '0x[0-9a-fA-F]*' || true)"
    log "  OK   $what ($auth) refused: ${rc:-?} $( [[ -n $rc ]] && tpm2_rc_decode "$rc")"
}

u16_at() { xxd -s "$2" -l 2 -p "$1"; }
layout() { # FILE -> "magic version idObjectSize encSecretSize total"
    local f=$1 n
    n=$(( 0x$(u16_at "$f" 8) ))
    echo "$(xxd -l 4 -p "$f") $(xxd -s 4 -l 4 -p "$f") $n $(( 0x$(u16_at "$f" $((10 + n))) )) $(stat -c %s "$f")"
}

# run_kind KIND(-G of tpm2_createek) AK_G AK_HASH AK_SCHEME AUTH
run_kind() {
    local kind=$1 akg=$2 akh=$3 aks=$4 auth=$5 d="$WORK/$1"
    mkdir -p "$d"
    log "EK $kind"
    flush
    tpm2_createek -G "$kind" -c "$d/ek.ctx" -u "$d/ek.pub" >/dev/null
    flush
    tpm2_createak -C "$d/ek.ctx" -c "$d/ak.ctx" -G "$akg" -g "$akh" -s "$aks" \
        -u "$d/ak.pub" -n "$d/ak.name" >/dev/null
    flush
    local info name_alg digest_len
    info="$(tpm2_print -t TPM2B_PUBLIC "$d/ek.pub")"
    name_alg="$(awk '/^name-alg:/{getline; print $2}' <<<"$info")"
    case "$name_alg" in sha256) digest_len=32;; sha384) digest_len=48;; sha512) digest_len=64;; *) exit 1;; esac
    log "  EK nameAlg $name_alg, attributes $(awk '/^attributes:/{getline; print $2}' <<<"$info"), sym $(awk '/^sym-keybits:/{print $2}' <<<"$info")-bit, authPolicy $(sed -n 's/^authorization policy: //p' <<<"$info")"
    log "  AK Name $(xxd -p -c 256 "$d/ak.name")"

    # Full-size secret (digest size of the EK nameAlg), then a 1-byte secret.
    openssl rand "$digest_len" >"$d/secret.bin"
    "$MAKE_CREDENTIAL" "$d/ek.pub" "$d/ak.name" "$(xxd -p -c 256 "$d/secret.bin")" "$d/cred.bin" >&2
    expect_released "$d" "$d/cred.bin" "$d/secret.bin" "$auth" "runtrust credential, $digest_len-byte secret"
    printf '\x5a' >"$d/secret1.bin"
    "$MAKE_CREDENTIAL" "$d/ek.pub" "$d/ak.name" 5a "$d/cred1.bin" >/dev/null
    expect_released "$d" "$d/cred1.bin" "$d/secret1.bin" "$auth" "runtrust credential, 1-byte secret"

    # Negative: a flipped byte in encIdentity (last byte of TPM2B_ID_OBJECT), and a credential bound to
    # another Name, are refused (outer HMAC check, TPM_RC_INTEGRITY).
    local n
    n=$(( 0x$(u16_at "$d/cred.bin" 8) ))
    cp "$d/cred.bin" "$d/tampered.bin"
    printf "$(printf '\\x%02x' $(( 0x$(xxd -s $((9 + n)) -l 1 -p "$d/cred.bin") ^ 1 )))" \
        | dd of="$d/tampered.bin" bs=1 seek=$((9 + n)) conv=notrunc status=none
    expect_refused "$d" "$d/tampered.bin" "$auth" "tampered encIdentity"
    cp "$d/ak.name" "$d/other.name"
    printf '\xff' | dd of="$d/other.name" bs=1 seek=2 conv=notrunc status=none
    "$MAKE_CREDENTIAL" "$d/ek.pub" "$d/other.name" "$(xxd -p -c 256 "$d/secret.bin")" "$d/other.bin" >/dev/null
    expect_refused "$d" "$d/other.bin" "$auth" "credential for another Name"

    # tpm2-tools' own software MakeCredential: same layout, and the TPM releases it too.
    if tpm2_makecredential -T none -e "$d/ek.pub" -s "$d/secret.bin" -n "$(xxd -p -c 256 "$d/ak.name")" \
        -o "$d/tools.cred" >"$d/makecredential.log" 2>&1; then
        local ours theirs
        ours="$(layout "$d/cred.bin")"; theirs="$(layout "$d/tools.cred")"
        log "  layout (magic version idObject encSecret total): runtrust [$ours] tpm2_makecredential [$theirs]"
        [[ "$ours" == "$theirs" ]] || { echo "FAIL: layout differs from tpm2_makecredential" >&2; exit 1; }
        expect_released "$d" "$d/tools.cred" "$d/secret.bin" "$auth" "tpm2_makecredential -T none credential"
    else
        log "  tpm2_makecredential -T none cannot make a credential for this EK: $(tr '\n' ' ' <"$d/makecredential.log")"
        rm -f "$d/tools.cred"
    fi

    # The independent Python implementation behind the known answers of tests/make_credential.rs.
    if [[ -n "$PYTHON_KAT" ]]; then
        "$PYTHON_KAT" make "$d/ek.pub" "$d/ak.name" "$(xxd -p -c 256 "$d/secret.bin")" "$d/python.cred"
        expect_released "$d" "$d/python.cred" "$d/secret.bin" "$auth" "kat.py credential"
    fi

    if [[ -n "$SAVE" ]]; then
        mkdir -p "$SAVE/$kind"
        cp "$d/ek.pub" "$d/ak.name" "$d/secret.bin" "$SAVE/$kind/"
        if [[ -f "$d/tools.cred" ]]; then cp "$d/tools.cred" "$SAVE/$kind/"; fi
        chmod 0644 "$SAVE/$kind"/*
    fi
}

run_kind rsa    rsa    sha256 rsassa policy-sha256
probe_auth() { # KIND AUTH EXPECT(released|refused)
    local d="$WORK/$1"
    if [[ $3 == released ]]; then
        expect_released "$d" "$d/cred.bin" "$d/secret.bin" "$2" "EK authorisation probe"
    else
        expect_refused "$d" "$d/cred.bin" "$2" "EK authorisation probe"
    fi
}
probe_auth rsa password refused
run_kind ecc    ecc    sha256 ecdsa  policy-sha256
probe_auth ecc password refused
run_kind ecc384 ecc384 sha384 ecdsa  policy-sha384
# The H-3 P-384 EK: userWithAuth is SET, so its empty authValue also authorises the USER role that
# ActivateCredential's keyHandle needs; a SHA-256 session or a missing PolicyOR does not satisfy the policy.
probe_auth ecc384 password released
probe_auth ecc384 policy-sha256-on384 refused
probe_auth ecc384 policy-sha384-noor refused

log "all EK kinds passed"
