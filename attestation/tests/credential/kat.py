#!/usr/bin/env python3
"""Independent known answers for attestation/tests/make_credential.rs.

A second implementation of KDFa, KDFe and TPM2_MakeCredential (TPM 2.0 Part 1 §11.4.10, §24, Annex B.10.4,
C.6.4), written from the specification with Python's hashlib/hmac and pyca/cryptography (AES-CFB, ECDH)
plus a hand-written RSA-OAEP encoding, so that it shares no code with the Rust one.

Randomness is fixed to what ring's FixedByteRandom { byte: 0x42 } yields: every byte 0x42. For an RSA EK
the seed and the OAEP seed are 0x42..; for an ECC EK the ephemeral private scalar is 0x4242..42.

Usage: ./kat.py            print the KDF answers and write <kind>/kat.cred for rsa, ecc, ecc384
       ./kat.py make EK_TPM2B_PUBLIC AK_NAME SECRET_HEX OUT
                           a credential file with real randomness (activate.sh has swtpm activate it)
"""
import hashlib
import hmac
import os
import struct
import sys

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # cryptography >= 47 moved CFB here
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:
    from cryptography.hazmat.primitives.ciphers.modes import CFB

HERE = os.path.dirname(os.path.abspath(__file__))
HASHES = {0x0004: "sha1", 0x000B: "sha256", 0x000C: "sha384", 0x000D: "sha512"}
CURVES = {0x0003: (ec.SECP256R1(), 32), 0x0004: (ec.SECP384R1(), 48)}
FIXED = 0x42
# The credential every KAT wraps: bytes 0x00, 0x01, ... of the EK nameAlg's digest size.
KAT_CREDENTIAL = lambda n: bytes(range(n))


def kdfa(h, key, label, u, v, bits):
    out, i = b"", 0
    while len(out) * 8 < bits:
        i += 1
        out += hmac.new(key, struct.pack(">I", i) + label.encode() + b"\0" + u + v + struct.pack(">I", bits), h).digest()
    out = bytearray(out[: (bits + 7) // 8])
    if bits % 8:
        out[0] &= 0xFF >> (8 - bits % 8)
    return bytes(out)


def kdfe(h, z, label, u, v, bits):
    out, i = b"", 0
    while len(out) * 8 < bits:
        i += 1
        out += hashlib.new(h, struct.pack(">I", i) + z + label.encode() + b"\0" + u + v).digest()
    out = bytearray(out[: (bits + 7) // 8])
    if bits % 8:
        out[0] &= 0xFF >> (8 - bits % 8)
    return bytes(out)


def mgf1(h, seed, length):
    out, i = b"", 0
    while len(out) < length:
        out += hashlib.new(h, seed + struct.pack(">I", i)).digest()
        i += 1
    return out[:length]


def oaep_encrypt(h, n, e, msg, label, seed):
    """RFC 8017 §7.1.1 with an explicit seed."""
    k = (n.bit_length() + 7) // 8
    hlen = hashlib.new(h).digest_size
    db = hashlib.new(h, label).digest() + b"\0" * (k - len(msg) - 2 * hlen - 2) + b"\x01" + msg
    masked_db = bytes(a ^ b for a, b in zip(db, mgf1(h, seed, k - hlen - 1)))
    masked_seed = bytes(a ^ b for a, b in zip(seed, mgf1(h, masked_db, hlen)))
    em = b"\0" + masked_seed + masked_db
    return pow(int.from_bytes(em, "big"), e, n).to_bytes(k, "big")


def tpm2b(b):
    return struct.pack(">H", len(b)) + b


class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        v = self.b[self.p : self.p + n]
        assert len(v) == n
        self.p += n
        return v

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def tpm2b(self):
        return self.take(self.u16())


def parse_ek(path):
    """TPM2B_PUBLIC of an EK (NULL scheme, AES-CFB symmetric, NULL kdf), enough for MakeCredential."""
    r = Reader(open(path, "rb").read())
    r = Reader(r.tpm2b())
    typ, name_alg, _attrs = r.u16(), r.u16(), r.u32()
    r.tpm2b()  # authPolicy
    assert r.u16() == 0x0006  # AES
    key_bits = r.u16()
    assert r.u16() == 0x0043  # CFB
    assert r.u16() == 0x0010  # scheme NULL
    ek = {"name_alg": HASHES[name_alg], "sym_bits": key_bits}
    if typ == 0x0001:
        r.u16()  # keyBits
        ek["e"] = r.u32() or 65537
        ek["n"] = int.from_bytes(r.tpm2b(), "big")
    else:
        ek["curve"] = CURVES[r.u16()]
        assert r.u16() == 0x0010  # kdf NULL
        ek["x"], ek["y"] = r.tpm2b(), r.tpm2b()
    assert r.p == len(r.b)
    return ek


def make_credential(ek, ak_name, credential, fixed=True):
    h = ek["name_alg"]
    dlen = hashlib.new(h).digest_size
    rand = (lambda n: bytes([FIXED]) * n) if fixed else os.urandom
    if "n" in ek:
        seed = rand(dlen)
        secret = oaep_encrypt(h, ek["n"], ek["e"], seed, b"IDENTITY\0", rand(dlen))
    else:
        curve, size = ek["curve"]
        if fixed:
            eph = ec.derive_private_key(int.from_bytes(bytes([FIXED]) * size, "big"), curve)
        else:
            eph = ec.generate_private_key(curve)
        pub = eph.public_key().public_numbers()
        qx, qy = pub.x.to_bytes(size, "big"), pub.y.to_bytes(size, "big")
        peer = ec.EllipticCurvePublicNumbers(int.from_bytes(ek["x"], "big"), int.from_bytes(ek["y"], "big"), curve)
        z = eph.exchange(ec.ECDH(), peer.public_key())
        seed = kdfe(h, z, "IDENTITY", qx, ek["x"], dlen * 8)
        secret = tpm2b(qx) + tpm2b(qy)
    sym_key = kdfa(h, seed, "STORAGE", ak_name, b"", ek["sym_bits"])
    enc = Cipher(algorithms.AES(sym_key), CFB(b"\0" * 16)).encryptor()
    enc_identity = enc.update(tpm2b(credential)) + enc.finalize()
    hmac_key = kdfa(h, seed, "INTEGRITY", b"", b"", dlen * 8)
    outer = hmac.new(hmac_key, enc_identity + ak_name, h).digest()
    blob = tpm2b(outer) + enc_identity
    return struct.pack(">II", 0xBADCC0DE, 1) + tpm2b(blob) + tpm2b(secret)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "make":
        # Random seed / ephemeral key: for activate.sh, which has the TPM check this implementation too.
        _, _, ek_path, name_path, secret_hex, out = sys.argv
        ek = parse_ek(ek_path)
        with open(out, "wb") as f:
            f.write(make_credential(ek, open(name_path, "rb").read(), bytes.fromhex(secret_hex), fixed=False))
        return
    print("kdfa sha256 key=00..1f STORAGE u=000b||aa*32 v='' 128:",
          kdfa("sha256", bytes(range(32)), "STORAGE", b"\x00\x0b" + b"\xaa" * 32, b"", 128).hex())
    print("kdfa sha384 key=00..2f INTEGRITY '' '' 384:",
          kdfa("sha384", bytes(range(48)), "INTEGRITY", b"", b"", 384).hex())
    print("kdfa sha256 key='runtrust' ATH u=01*16 v=02*16 520:",
          kdfa("sha256", b"runtrust", "ATH", b"\x01" * 16, b"\x02" * 16, 520).hex())
    print("kdfa sha256 key='runtrust' L '' '' 12:", kdfa("sha256", b"runtrust", "L", b"", b"", 12).hex())
    print("kdfe sha256 z=00..1f IDENTITY u=11*32 v=22*32 256:",
          kdfe("sha256", bytes(range(32)), "IDENTITY", b"\x11" * 32, b"\x22" * 32, 256).hex())
    print("kdfe sha384 z=00..2f IDENTITY u=11*48 v=22*48 384:",
          kdfe("sha384", bytes(range(48)), "IDENTITY", b"\x11" * 48, b"\x22" * 48, 384).hex())
    print("kdfe sha256 z='runtrust' IDENTITY u='' v='' 600:",
          kdfe("sha256", b"runtrust", "IDENTITY", b"", b"", 600).hex())
    for kind in ("rsa", "ecc", "ecc384"):
        d = os.path.join(HERE, kind)
        ek = parse_ek(os.path.join(d, "ek.pub"))
        ak_name = open(os.path.join(d, "ak.name"), "rb").read()
        cred = make_credential(ek, ak_name, KAT_CREDENTIAL(hashlib.new(ek["name_alg"]).digest_size))
        with open(os.path.join(d, "kat.cred"), "wb") as f:
            f.write(cred)
        print(f"{kind}/kat.cred: {len(cred)} bytes, sha256 {hashlib.sha256(cred).hexdigest()}")


if __name__ == "__main__":
    main()
