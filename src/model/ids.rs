//! Typed ids, each with one text form (its Display, FromStr and serde form agree).

use std::fmt;
use std::str::FromStr;

use runtrust_attestation::{HashAlg, Public};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must be {len} hex digits")]
    Hex { what: &'static str, len: usize },
    #[error("a host id is sha256: followed by 64 hex digits")]
    HostId,
}

/// Lowercase hex of exactly `N` bytes.
fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], IdError> {
    let err = || IdError::Hex { what, len: N * 2 };
    if s.len() != N * 2 {
        return Err(err());
    }
    let v = hex::decode(s).map_err(|_| err())?;
    v.try_into().map_err(|_| err())
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// From bytes of exactly the right length.
            pub fn from_slice(b: &[u8]) -> Result<Self, IdError> {
                <[u8; $len]>::try_from(b).map($name).map_err(|_| IdError::Hex { what: $what, len: $len * 2 })
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_hex::<$len>($what, &s.to_ascii_lowercase()).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// A token's id (`cti`, RFC 8392 §3.1.7): 16 random bytes.
    Cti, 16, "a token id (cti)"
);
hex_id!(
    /// A challenge nonce (docs/design.md §6): 32 random bytes, single use.
    Nonce, 32, "a nonce"
);
hex_id!(
    /// A policy version: SHA-256 of the policy file's bytes (docs/design.md §10).
    PolicyHash, 32, "a policy hash"
);

impl PolicyHash {
    pub fn of(policy_bytes: &[u8]) -> Self {
        let d = ring::digest::digest(&ring::digest::SHA256, policy_bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        PolicyHash(out)
    }
}

/// A host's id (docs/design.md §5): `sha256:<hex of SHA-256 over the EK's TPMT_PUBLIC>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct HostId(String);

impl HostId {
    const PREFIX: &'static str = "sha256:";

    /// The id of the host whose EK this is.
    pub fn of_ek(ek: &Public) -> Self {
        HostId(format!("{}{}", Self::PREFIX, hex::encode(HashAlg::Sha256.digest(ek.tpmt_bytes()))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HostId {
    type Err = IdError;
    /// Case-insensitive; the id is kept lowercase.
    fn from_str(s: &str) -> Result<Self, IdError> {
        let lower = s.to_ascii_lowercase();
        let hex = lower.strip_prefix(Self::PREFIX).ok_or(IdError::HostId)?;
        parse_hex::<32>("a host id", hex).map_err(|_| IdError::HostId)?;
        Ok(HostId(lower))
    }
}

impl<'de> Deserialize<'de> for HostId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl std::ops::Deref for HostId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostId({})", self.0)
    }
}

impl PartialEq<str> for HostId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for HostId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        let n: Nonce = "AB".repeat(32).parse().unwrap();
        assert_eq!(n.to_string(), "ab".repeat(32));
        assert_eq!(serde_json::to_string(&n).unwrap(), format!("\"{}\"", "ab".repeat(32)));
        assert!("ab".repeat(31).parse::<Nonce>().is_err());
        assert!("zz".repeat(32).parse::<Nonce>().is_err());
        let c: Cti = serde_json::from_str(&format!("\"{}\"", "01".repeat(16))).unwrap();
        assert_eq!(c.0, [1u8; 16]);
        let h: HostId = format!("SHA256:{}", "AA".repeat(32)).parse().unwrap();
        assert_eq!(h.as_str(), format!("sha256:{}", "aa".repeat(32)));
        assert!("sha1:00".parse::<HostId>().is_err());
        assert!(serde_json::from_str::<HostId>("\"sha256:xyz\"").is_err());
    }

    #[test]
    fn policy_hash_is_sha256_of_the_bytes() {
        assert_eq!(PolicyHash::of(b"").to_string(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
