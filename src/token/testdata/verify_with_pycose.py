#!/usr/bin/env python3
"""Verify a runtrust execution token with an independent COSE implementation (pycose + cryptography).

    pip install pycose          # pulls in cbor2 and cryptography
    python3 verify_with_pycose.py TOKEN KEYS [--detached PAYLOAD]

TOKEN is a tagged COSE_Sign1 (a token from `runtrust token request`, or a detached policy signature with
--detached). KEYS is the issuer key set: a COSE_KeySet (`GET /v1/keys`, `runtrust keys export --format
cose`) or PEM public keys (`runtrust keys export --format pem`).

Besides the signature, this checks independently of runtrust that the kid in the protected header is the
RFC 9679 thumbprint of the key that verified it. Exit status 0 when everything verifies, 1 otherwise. Only
signature, kid and structure are checked here; time, audience and scope are the relying party's policy.
"""

import argparse
import hashlib
import json
import sys

import cbor2
from pycose.headers import KID, Algorithm
from pycose.keys import CoseKey
from pycose.messages import CoseMessage, Sign1Message

# COSE_Key labels (RFC 9052 §7.1, RFC 9053 §7).
KTY, CRV, X, Y = 1, -1, -2, -3


def thumbprint(key_map):
    """RFC 9679 §3: SHA-256 over the deterministic CBOR of the required members."""
    required = {KTY: key_map[KTY], CRV: key_map[CRV], X: key_map[X]}
    if key_map[KTY] == 2:  # EC2 also needs y
        required[Y] = key_map[Y]
    return hashlib.sha256(cbor2.dumps(required, canonical=True)).digest()


def load_keys(path):
    """[(thumbprint, CoseKey)] from a COSE_KeySet or a PEM file."""
    data = open(path, "rb").read()
    if data.lstrip().startswith(b"-----BEGIN"):
        keys = []
        for block in data.decode().split("-----END PUBLIC KEY-----"):
            if "-----BEGIN PUBLIC KEY-----" in block:
                k = CoseKey.from_pem_public_key(block + "-----END PUBLIC KEY-----\n")
                m = cbor2.loads(k.encode())
                keys.append((thumbprint(m), k))
        return keys
    keys = []
    for m in cbor2.loads(data):
        tp = thumbprint(m)
        if 2 in m and m[2] != tp:
            raise SystemExit(f"key set: kid {m[2].hex()} is not the RFC 9679 thumbprint {tp.hex()}")
        keys.append((tp, CoseKey.from_dict(m)))
    return keys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("token")
    ap.add_argument("keys")
    ap.add_argument("--detached", metavar="PAYLOAD", help="file holding the detached payload")
    args = ap.parse_args()

    raw = open(args.token, "rb").read()
    outer = cbor2.loads(raw)
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != 18:
        print("FAIL: not a tagged COSE_Sign1 (tag 18)")
        return 1
    msg = CoseMessage.decode(raw)
    assert isinstance(msg, Sign1Message)
    kid = msg.phdr.get(KID)
    alg = msg.phdr.get(Algorithm)
    print(f"protected header: alg={alg.fullname} kid={kid.hex()}")

    matches = [k for tp, k in load_keys(args.keys) if tp == kid]
    if not matches:
        print("FAIL: no key in the key set has this kid (RFC 9679 thumbprint)")
        return 1
    msg.key = matches[0]
    detached = open(args.detached, "rb").read() if args.detached else None
    try:
        ok = msg.verify_signature(detached_payload=detached)
    except Exception as e:  # pycose raises on malformed signatures or key/alg mismatches
        print(f"FAIL: {type(e).__name__}: {e}")
        return 1
    if not ok:
        print("FAIL: signature does not verify")
        return 1
    print(f"signature: OK ({alg.fullname}, pycose)")

    if detached is None:
        claims = cbor2.loads(msg.payload)
        names = {1: "iss", 2: "sub", 3: "aud", 4: "exp", 5: "nbf", 6: "iat", 7: "cti", 8: "cnf",
                 10: "eat_nonce", 265: "eat_profile", -70001: "scope", -70002: "initiator",
                 -70003: "policy_id", -70004: "policy_hash", -70005: "pcr_bank", -70006: "pcr_selection",
                 -70007: "pcr_digest", -70008: "parent_cti", -70009: "delegation_depth",
                 -70010: "audit_index", -70011: "single_use"}

        def show(v):
            if isinstance(v, bytes):
                return v.hex() if len(v) <= 40 else v[:16].hex() + f"... ({len(v)} bytes)"
            if isinstance(v, dict):
                return {str(k): show(x) for k, x in v.items()}
            return v

        print(json.dumps({names.get(k, str(k)): show(v) for k, v in claims.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
