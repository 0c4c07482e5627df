#!/usr/bin/env bash
# A simulated TPM for trying runtrust by hand: swtpm with an EK certificate from its own local CA.
#
#   scripts/swtpm.sh start   # set up (first time) and start swtpm; prints the exports to use
#   eval "$(scripts/swtpm.sh env)"
#   runtrust tpm info
#   scripts/swtpm.sh stop    # shut the TPM down cleanly and stop it (the state is kept; 'reset' deletes it)
#
# State lives in $RUNTRUST_SWTPM_DIR (default: ${XDG_RUNTIME_DIR:-/tmp}/runtrust-swtpm-$UID). The EK CA
# certificates are in that directory's localca/ (swtpm-localca-rootca-cert.pem, issuercert.pem).
set -euo pipefail

DIR="${RUNTRUST_SWTPM_DIR:-${XDG_RUNTIME_DIR:-/tmp}/runtrust-swtpm-$(id -u)}"
STATE="$DIR/state"
CA="$DIR/localca"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "swtpm.sh: $1 not found. Install: sudo apt-get install swtpm swtpm-tools (or run scripts/install-deps.sh)" >&2
        exit 1
    }
}

running() { [[ -s "$DIR/swtpm.pid" ]] && kill -0 "$(cat "$DIR/swtpm.pid")" 2>/dev/null; }

print_env() {
    local port
    port="$(cat "$DIR/port")"
    echo "export RUNTRUST_TCTI=swtpm:host=127.0.0.1,port=$port"
    echo "export TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=$port"
    echo "export RUNTRUST_SWTPM_CA=$CA/swtpm-localca-rootca-cert.pem"
    echo "export RUNTRUST_SWTPM_INTERMEDIATE=$CA/issuercert.pem"
}

setup() {
    need swtpm_setup
    need swtpm_localca
    mkdir -p "$STATE" "$CA"
    chmod 700 "$DIR"
    # A private CA and config, so that neither root's /var/lib/swtpm-localca nor ~/.config is touched.
    cat >"$DIR/swtpm-localca.conf" <<CONF
statedir = $CA
signingkey = $CA/signkey.pem
issuercert = $CA/issuercert.pem
certserial = $CA/certserial
CONF
    cat >"$DIR/swtpm-localca.options" <<CONF
--platform-manufacturer runtrust
--platform-version 2.1
--platform-model swtpm
CONF
    cat >"$DIR/swtpm_setup.conf" <<CONF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $DIR/swtpm-localca.conf
create_certs_tool_options = $DIR/swtpm-localca.options
active_pcr_banks = sha256
CONF
    swtpm_setup --tpm2 --tpmstate "$STATE" --config "$DIR/swtpm_setup.conf" \
        --create-ek-cert --create-platform-cert --pcr-banks "${RUNTRUST_SWTPM_BANKS:-sha1,sha256}" \
        --overwrite >"$DIR/setup.log" 2>&1 || { cat "$DIR/setup.log" >&2; exit 1; }
}

start() {
    need swtpm
    if running; then
        print_env
        return
    fi
    [[ -e "$STATE/tpm2-00.permall" ]] || setup
    local p
    for _ in $(seq 30); do
        p=$((20000 + (RANDOM % 20000) * 2))
        rm -f "$DIR/swtpm.pid"
        # --daemon chdir()s to /: every path here is absolute.
        if swtpm socket --tpm2 --tpmstate dir="$STATE" \
            --server type=tcp,port="$p",bindaddr=127.0.0.1 \
            --ctrl type=tcp,port="$((p + 1))",bindaddr=127.0.0.1 \
            --flags not-need-init,startup-clear \
            --pid file="$DIR/swtpm.pid" --log file="$DIR/swtpm.log",level=1 \
            --daemon 2>>"$DIR/swtpm.err"; then
            for _ in $(seq 50); do [[ -s "$DIR/swtpm.pid" ]] && break; sleep 0.1; done
            echo "$p" >"$DIR/port"
            echo "swtpm.sh: swtpm running on 127.0.0.1:$p (pid $(cat "$DIR/swtpm.pid"), state $DIR)" >&2
            print_env
            return
        fi
    done
    cat "$DIR/swtpm.err" >&2
    echo "swtpm.sh: could not start swtpm" >&2
    exit 1
}

# TPM2_Shutdown(TPM_SU_CLEAR) (TPM 2.0 Part 3 §9.4), sent raw to swtpm's TPM port: the TPM saves its clock, so
# it is still 'safe' at the next start. A TPM stopped without it restarts its clock from an older saved value
# and reports safe = NO until its next save (swtpm: within ~4 s): quotes are then clock_regressed
# (docs/evidence.md, "Clock"), and repeated unclean stops can put the TPM in dictionary-attack lockout.
tpm_shutdown() {
    local port answer
    port="$(cat "$DIR/port" 2>/dev/null)" || return 1
    # tag TPM_ST_NO_SESSIONS (8001), size 12, TPM_CC_Shutdown (00000145), TPM_SU_CLEAR (0000); the answer is a
    # 10-byte header whose last four bytes are the response code (0: success).
    answer="$(timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf '\x80\x01\x00\x00\x00\x0c\x00\x00\x01\x45\x00\x00' >&3 && head -c 10 <&3 | od -An -tx1" 2>/dev/null | tr -d ' \n')"
    [[ "$answer" == "80010000000a00000000" ]]
}

stop() {
    if running; then
        local pid
        pid="$(cat "$DIR/swtpm.pid")"
        tpm_shutdown || echo "swtpm.sh: TPM2_Shutdown failed (is a client still connected?); the next start will report an unsafe clock" >&2
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        echo "swtpm.sh: stopped swtpm (pid $pid)" >&2
    fi
    rm -f "$DIR/swtpm.pid"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env)
        running || { echo "swtpm.sh: not running; run: scripts/swtpm.sh start" >&2; exit 1; }
        print_env
        ;;
    reset)
        stop
        rm -rf "$DIR"
        echo "swtpm.sh: removed $DIR" >&2
        ;;
    *)
        echo "usage: $0 start|stop|env|reset" >&2
        exit 2
        ;;
esac
