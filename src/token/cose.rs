//! The COSE_Sign1 envelope (RFC 9052 §4.2): tag 18, protected header {1: alg, 4: kid}, empty unprotected
//! header, the claims (or nil, for detached signatures) and a 64-byte signature over the Sig_structure
//! (§4.4). Parsing is [`cbor::Reader`]'s: only the deterministic encoding [`IssuerKey::sign`] produces is
//! read, so there is exactly one encoding of each envelope; then exactly that header.

use ring::rand::SecureRandom;

use super::cbor::{self, Cbor, IntMap};
use super::claims::Claims;
use super::keys::{IssuerKey, KeySet, SigningAlg, VerifyingKey};
use super::labels::{header, TAG_COSE_SIGN1};
use super::TokenError;

/// Bound on a token or detached signature, checked before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The kid is a SHA-256 thumbprint.
const KID_LEN: usize = 32;
/// Leeway [`Expectations::new`] grants for clock skew between issuer and relying party.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;
/// The most leeway [`verify`] grants, whatever it is asked for: skew, not a way to revive expired tokens.
pub const MAX_LEEWAY_SECS: i64 = 300;

/// The protected header of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHeader {
    pub alg: SigningAlg,
    /// The issuer key's RFC 9679 thumbprint.
    pub kid: Vec<u8>,
}

impl TokenHeader {
    /// {1: alg, 4: kid}, deterministically encoded: the bytes of the protected bstr.
    fn encode(&self) -> Vec<u8> {
        cbor::encode(&Cbor::Map(vec![
            (header::ALG, Cbor::Int(self.alg.cose_alg())),
            (header::KID, Cbor::Bytes(self.kid.clone())),
        ]))
    }

    fn decode(protected: &[u8]) -> Result<Self, TokenError> {
        let malformed = |m: String| TokenError::Malformed(format!("protected header: {m}"));
        let v = cbor::decode(protected).map_err(malformed)?;
        let mut m = IntMap::new(v, "protected header", &[header::ALG, header::KID]).map_err(malformed)?;
        let alg_id =
            m.require(header::ALG, "protected header").and_then(|a| cbor::to_i64(a, "alg")).map_err(malformed)?;
        let alg = SigningAlg::from_cose_alg(alg_id).ok_or_else(|| TokenError::UnsupportedAlg(alg_id.to_string()))?;
        let kid =
            m.require(header::KID, "protected header").and_then(|k| cbor::to_bytes(k, "kid")).map_err(malformed)?;
        if kid.len() != KID_LEN {
            return Err(malformed(format!("kid is {} bytes, not a {KID_LEN}-byte thumbprint", kid.len())));
        }
        let h = TokenHeader { alg, kid };
        if h.encode() != protected {
            return Err(malformed("not deterministically encoded".into()));
        }
        Ok(h)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "alg": self.alg.name(), "kid": hex::encode(&self.kid) })
    }
}

/// What a relying party requires of a token besides a good signature.
#[derive(Clone, Copy, Debug)]
pub struct Expectations<'a> {
    /// Unix seconds.
    pub now: i64,
    /// iss must equal it (RFC 8392 §3.1.1): the service id of the issuer these keys belong to. Always
    /// checked, so that a relying party cannot forget it (docs/design.md §7, §9).
    pub issuer: &'a str,
    /// When set, aud must equal it.
    pub audience: Option<&'a str>,
    /// When set, this scope must be within the token's scope ([`crate::scope::within`]).
    pub scope: Option<&'a str>,
    /// Clock skew tolerated on nbf and exp, clamped to 0..=[`MAX_LEEWAY_SECS`].
    pub leeway_secs: i64,
}

impl<'a> Expectations<'a> {
    /// Only the issuer and time are checked, with [`DEFAULT_LEEWAY_SECS`].
    pub fn new(now: i64, issuer: &'a str) -> Self {
        Expectations { now, issuer, audience: None, scope: None, leeway_secs: DEFAULT_LEEWAY_SECS }
    }
}

/// A parsed, not yet verified, COSE_Sign1.
struct Envelope {
    header: TokenHeader,
    protected: Vec<u8>,
    payload: Option<Vec<u8>>,
    signature: Vec<u8>,
}

/// COSE_Sign1 = [protected: bstr, unprotected: {}, payload: bstr / nil, signature: bstr], tag 18.
fn encode_envelope(protected: &[u8], payload: Option<&[u8]>, signature: &[u8]) -> Vec<u8> {
    cbor::encode(&Cbor::Tag(
        TAG_COSE_SIGN1,
        Box::new(Cbor::Array(vec![
            Cbor::Bytes(protected.to_vec()),
            Cbor::Map(Vec::new()),
            payload.map_or(Cbor::Null, |p| Cbor::Bytes(p.to_vec())),
            Cbor::Bytes(signature.to_vec()),
        ])),
    ))
}

/// Sig_structure = ["Signature1", body_protected, external_aad (empty), payload] (RFC 9052 §4.4).
fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    const CONTEXT: &str = "Signature1";
    let mut out = Vec::with_capacity(32 + protected.len() + payload.len());
    cbor::head(4, 4, &mut out);
    cbor::head(3, CONTEXT.len() as u64, &mut out);
    out.extend_from_slice(CONTEXT.as_bytes());
    for field in [protected, &[], payload] {
        cbor::head(2, field.len() as u64, &mut out);
        out.extend_from_slice(field);
    }
    out
}

fn parse(bytes: &[u8]) -> Result<Envelope, TokenError> {
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge { len: bytes.len(), max: MAX_TOKEN_BYTES });
    }
    // Exactly one encoding of the envelope is accepted, the one runtrust writes: tag 18 (an untagged or
    // otherwise tagged item is refused), then the array in deterministic CBOR.
    let malformed = |e: String| TokenError::Malformed(format!("COSE_Sign1: {e}"));
    let mut r = cbor::Reader::new(bytes);
    r.expect(6, TAG_COSE_SIGN1, "tag 18 (COSE_Sign1)").map_err(malformed)?;
    r.expect(4, 4, "an array of 4 items").map_err(malformed)?;
    let protected = r.bytes().map_err(|e| malformed(format!("protected header: {e}")))?.to_vec();
    match r.head().map_err(|e| malformed(format!("unprotected header: {e}")))? {
        (5, 0) => {}
        (5, _) => return Err(TokenError::Malformed("the unprotected header must be empty".into())),
        _ => return Err(malformed("the unprotected header is not a map".into())),
    }
    let payload = r.bytes_or_null().map_err(|e| malformed(format!("payload: {e}")))?.map(<[u8]>::to_vec);
    let signature = r.bytes().map_err(|e| malformed(format!("signature: {e}")))?.to_vec();
    r.end().map_err(malformed)?;
    let header = TokenHeader::decode(&protected)?;
    Ok(Envelope { header, protected, payload, signature })
}

/// Finds the key by kid and checks the signature over `payload`.
fn check_signature<'k>(env: &Envelope, keys: &'k KeySet, payload: &[u8]) -> Result<&'k VerifyingKey, TokenError> {
    let key = keys.find(&env.header.kid).ok_or_else(|| TokenError::UnknownKid(hex::encode(&env.header.kid)))?;
    // The header's alg must be the key's: no key is used with an algorithm it was not made for.
    if key.alg() != env.header.alg {
        return Err(TokenError::AlgMismatch {
            token: env.header.alg.name().into(),
            key: key.alg().name().into(),
            kid: key.kid_hex(),
        });
    }
    key.verify(&sig_structure(&env.protected, payload), &env.signature)?;
    Ok(key)
}

impl IssuerKey {
    fn sign_envelope(
        &self,
        attached: Option<&[u8]>,
        signed_payload: &[u8],
        rng: &dyn SecureRandom,
    ) -> Result<Vec<u8>, TokenError> {
        let protected = TokenHeader { alg: self.alg(), kid: self.kid() }.encode();
        let signature = self.sign_raw(&sig_structure(&protected, signed_payload), rng)?;
        let out = encode_envelope(&protected, attached, &signature);
        if out.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Unsignable(format!("token would be {} bytes, over {MAX_TOKEN_BYTES}", out.len())));
        }
        Ok(out)
    }

    /// Signs `claims` into a tagged COSE_Sign1. Claims that [`Claims::validate`] refuses are not signed.
    pub fn sign(&self, claims: &Claims, rng: &dyn SecureRandom) -> Result<Vec<u8>, TokenError> {
        claims.validate().map_err(|e| TokenError::Unsignable(e.to_string()))?;
        let payload = claims.to_payload();
        self.sign_envelope(Some(&payload), &payload, rng)
    }

    /// A COSE_Sign1 with a nil payload over external bytes (RFC 9052 §4.1 detached content), e.g. a policy.
    pub fn sign_detached(&self, payload: &[u8], rng: &dyn SecureRandom) -> Result<Vec<u8>, TokenError> {
        self.sign_envelope(None, payload, rng)
    }

    /// Signs an arbitrary payload as if it were claims (tests of the verifier's claim checks).
    #[cfg(test)]
    pub(crate) fn sign_payload_unchecked(&self, payload: &[u8], rng: &dyn SecureRandom) -> Vec<u8> {
        self.sign_envelope(Some(payload), payload, rng).unwrap()
    }
}

/// Header and claims of a well-formed token, without checking its signature or times (`token inspect`).
pub fn decode_unverified(token: &[u8]) -> Result<(TokenHeader, Claims), TokenError> {
    let env = parse(token)?;
    let payload = env.payload.ok_or_else(|| TokenError::Malformed("payload is detached: not a token".into()))?;
    Ok((env.header, Claims::from_payload(&payload)?))
}

/// Verifies a token: form, signature by the key in `keys` named by its kid, claims, issuer, validity period,
/// audience and scope, in that order. Returns its claims.
pub fn verify(token: &[u8], keys: &KeySet, exp: &Expectations<'_>) -> Result<Claims, TokenError> {
    let env = parse(token)?;
    let payload =
        env.payload.as_deref().ok_or_else(|| TokenError::Malformed("payload is detached: not a token".into()))?;
    check_signature(&env, keys, payload)?;
    // Authenticity first: the claims are read only once the issuer is known to have signed them.
    let claims = Claims::from_payload(payload)?;
    // A token another issuer made (or one signed with a key shared across services) is not this issuer's.
    if claims.iss != exp.issuer {
        return Err(TokenError::IssuerMismatch { expected: exp.issuer.into(), actual: claims.iss });
    }

    let leeway = exp.leeway_secs.clamp(0, MAX_LEEWAY_SECS);
    // RFC 8392 §3.1.5: not accepted before nbf; §3.1.4: not accepted on or after exp.
    if exp.now.saturating_add(leeway) < claims.nbf {
        return Err(TokenError::NotYetValid { nbf: claims.nbf, now: exp.now, leeway });
    }
    if exp.now.saturating_sub(leeway) >= claims.exp {
        return Err(TokenError::Expired { exp: claims.exp, now: exp.now, leeway });
    }
    if let Some(audience) = exp.audience {
        if claims.aud != audience {
            return Err(TokenError::AudienceMismatch { expected: audience.into(), actual: claims.aud });
        }
    }
    if let Some(requested) = exp.scope {
        let ok = crate::scope::validate(requested, true).is_ok() && crate::scope::within(requested, &claims.scope);
        if !ok {
            return Err(TokenError::ScopeDenied { requested: requested.into(), granted: claims.scope });
        }
    }
    Ok(claims)
}

/// Verifies a detached COSE_Sign1 over `payload`; returns the signing key's kid.
pub fn verify_detached(sig: &[u8], payload: &[u8], keys: &KeySet) -> Result<Vec<u8>, TokenError> {
    let env = parse(sig)?;
    if env.payload.is_some() {
        return Err(TokenError::Malformed("payload is attached: not a detached signature".into()));
    }
    Ok(check_signature(&env, keys, payload)?.kid().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coset::TaggedCborSerializable as _;
    use ring::rand::SystemRandom;

    #[test]
    fn sig_structure_matches_coset() {
        let rng = SystemRandom::new();
        let (key, _) = IssuerKey::generate(SigningAlg::EdDsa, &rng).unwrap();
        let token = key.sign_detached(b"policy bytes", &rng).unwrap();
        let msg = coset::CoseSign1::from_tagged_slice(&token).unwrap();
        let env = parse(&token).unwrap();
        assert_eq!(msg.tbs_detached_data(b"policy bytes", b""), sig_structure(&env.protected, b"policy bytes"));
        // And coset writes the same envelope bytes.
        assert_eq!(msg.to_tagged_vec().unwrap(), token);
    }

    #[test]
    fn header_is_exactly_alg_and_kid() {
        let kid = vec![7u8; KID_LEN];
        let h = TokenHeader { alg: SigningAlg::Es256, kid: kid.clone() };
        // {1: -7, 4: h'07…'}
        assert_eq!(hex::encode(&h.encode()[..5]), "a201260458");
        assert_eq!(TokenHeader::decode(&h.encode()).unwrap(), h);
        let with = |entries: Vec<(i64, Cbor)>| TokenHeader::decode(&cbor::encode(&Cbor::Map(entries)));
        let extra = with(vec![(1, Cbor::Int(-7)), (4, Cbor::Bytes(kid.clone())), (3, Cbor::Int(0))]);
        assert!(matches!(extra, Err(TokenError::Malformed(_))), "content type is not allowed");
        let no_kid = with(vec![(1, Cbor::Int(-7))]);
        assert!(matches!(no_kid, Err(TokenError::Malformed(_))));
        let short = with(vec![(1, Cbor::Int(-7)), (4, Cbor::Bytes(vec![1; 8]))]);
        assert!(matches!(short, Err(TokenError::Malformed(_))));
        let rs256 = with(vec![(1, Cbor::Int(-257)), (4, Cbor::Bytes(kid.clone()))]);
        assert!(matches!(rs256, Err(TokenError::UnsupportedAlg(_))));
        let text_alg = with(vec![(1, Cbor::Text("EdDSA".into())), (4, Cbor::Bytes(kid))]);
        assert!(text_alg.is_err());
    }
}
