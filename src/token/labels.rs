//! Every integer the token format puts on the wire, in one place: CWT claim keys, COSE header and key
//! labels, and COSE algorithm identifiers (IANA "COSE Algorithms", "COSE Key Types", "COSE Elliptic
//! Curves", "CBOR Web Token (CWT) Claims").

/// CWT claim keys (RFC 8392 §3.1 / §9.1, RFC 8747 §3.1, RFC 9711 §4).
pub mod claim {
    /// iss: the issuing service (RFC 8392 §3.1.1).
    pub const ISS: i64 = 1;
    /// sub: the host id (RFC 8392 §3.1.2).
    pub const SUB: i64 = 2;
    /// aud: the gateway / audience (RFC 8392 §3.1.3).
    pub const AUD: i64 = 3;
    /// exp, NumericDate (RFC 8392 §3.1.4).
    pub const EXP: i64 = 4;
    /// nbf, NumericDate (RFC 8392 §3.1.5).
    pub const NBF: i64 = 5;
    /// iat, NumericDate (RFC 8392 §3.1.6).
    pub const IAT: i64 = 6;
    /// cti, the token id (RFC 8392 §3.1.7).
    pub const CTI: i64 = 7;
    /// cnf, proof-of-possession key (RFC 8747 §3.1).
    pub const CNF: i64 = 8;
    /// eat_nonce (RFC 9711 §4.1).
    pub const EAT_NONCE: i64 = 10;
    /// eat_profile (RFC 9711 §4.3.2).
    pub const EAT_PROFILE: i64 = 265;

    // Private claims. RFC 8392 §9.1: integer keys below -65536 are Private Use.
    /// The scope (or scope pattern) this token authorizes, text.
    pub const SCOPE: i64 = -70001;
    /// The principal that requested the token, text.
    pub const INITIATOR: i64 = -70002;
    /// The id of the policy that allowed issuance, text.
    pub const POLICY_ID: i64 = -70003;
    /// SHA-256 of the policy file's bytes, bstr .size 32.
    pub const POLICY_HASH: i64 = -70004;
    /// The PCR bank the policy appraised, text (`sha256`).
    pub const PCR_BANK: i64 = -70005;
    /// The signed PCR selection, tpm2-tools style text (`sha256:0,1,2`).
    pub const PCR_SELECTION: i64 = -70006;
    /// The quote's pcrDigest, bstr.
    pub const PCR_DIGEST: i64 = -70007;
    /// The parent token's cti; absent for root tokens.
    pub const PARENT_CTI: i64 = -70008;
    /// Delegation depth, uint; 0 for root tokens.
    pub const DELEGATION_DEPTH: i64 = -70009;
    /// Index of the issuance entry in the audit log, uint; optional.
    pub const AUDIT_INDEX: i64 = -70010;
    /// Whether the token may be used for one execution only, bool.
    pub const SINGLE_USE: i64 = -70011;
}

/// The cnf confirmation method carrying a COSE_Key (RFC 8747 §3.2).
pub const CNF_COSE_KEY: i64 = 1;

/// COSE header parameters (RFC 9052 §3.1).
pub mod header {
    pub const ALG: i64 = 1;
    pub const KID: i64 = 4;
}

/// COSE_Key common parameters (RFC 9052 §7.1) and key-type parameters (RFC 9053 §7.1, §7.2; RFC 8230 §4).
pub mod key {
    pub const KTY: i64 = 1;
    pub const KID: i64 = 2;
    pub const ALG: i64 = 3;
    /// crv (EC2, OKP) — the same label as RSA's n.
    pub const CRV: i64 = -1;
    /// x (EC2, OKP).
    pub const X: i64 = -2;
    /// y (EC2).
    pub const Y: i64 = -3;
    /// n, the RSA modulus (RFC 8230 §4).
    pub const RSA_N: i64 = -1;
    /// e, the RSA public exponent (RFC 8230 §4).
    pub const RSA_E: i64 = -2;
}

/// COSE key types (RFC 9053 §7, RFC 8230 §4).
pub mod kty {
    pub const OKP: i64 = 1;
    pub const EC2: i64 = 2;
    pub const RSA: i64 = 3;
}

/// COSE elliptic curves (RFC 9053 §7.1).
pub mod crv {
    pub const P256: i64 = 1;
    pub const P384: i64 = 2;
    pub const ED25519: i64 = 6;
}

/// COSE algorithm identifiers (RFC 9053 §2, RFC 8230 §2, RFC 8812 §2).
pub mod alg {
    /// ECDSA w/ SHA-256 (RFC 9053 §2.1).
    pub const ES256: i64 = -7;
    /// EdDSA (RFC 9053 §2.2).
    pub const EDDSA: i64 = -8;
    /// ECDSA w/ SHA-384.
    pub const ES384: i64 = -35;
    /// ECDSA w/ SHA-512.
    pub const ES512: i64 = -36;
    /// RSASSA-PSS w/ SHA-256 (RFC 8230 §2).
    pub const PS256: i64 = -37;
    pub const PS384: i64 = -38;
    pub const PS512: i64 = -39;
    /// RSASSA-PKCS1-v1_5 w/ SHA-256 (RFC 8812 §2).
    pub const RS256: i64 = -257;
    pub const RS384: i64 = -258;
    pub const RS512: i64 = -259;
    /// RSASSA-PKCS1-v1_5 w/ SHA-1 (RFC 8812 §2; legacy AKs only).
    pub const RS1: i64 = -65535;
}

/// The CBOR tag of a COSE_Sign1 (RFC 9052 §2).
pub const TAG_COSE_SIGN1: u64 = 18;
