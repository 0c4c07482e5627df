//! The load generator's test EK CA: the trust anchor the service is told about (`runtrust init --ek-ca`),
//! and the EK certificates it issues to software TPMs, shaped like a TPM vendor's (TCG EK Credential
//! Profile: extendedKeyUsage tcg-kp-EKCertificate, keyAgreement for an ECC EK, cA=FALSE).
//!
//! Only the CA's key is kept on disk (with its certificate for the service): the issuing certificate is
//! rebuilt from the same parameters and key, so it has the same subject Name and key as the anchor, which is
//! all path validation matches on.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256,
};

/// tcg-kp-EKCertificate (TCG EK Credential Profile §3.2.16).
const TCG_KP_EK_CERTIFICATE: [u64; 5] = [2, 23, 133, 8, 1];
const CA_CERT_FILE: &str = "ek-ca.pem";
const CA_KEY_FILE: &str = "ek-ca-key.pem";

pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "runtrust-loadgen");
    dn.push(DnType::CommonName, "runtrust-loadgen test EK CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    p.serial_number = Some(SerialNumber::from(1u64));
    p
}

/// An EK public key for rcgen: the SEC1 uncompressed point of a P-256 key.
struct EkKey<'a>(&'a [u8]);

impl PublicKeyData for EkKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl TestCa {
    pub fn generate() -> anyhow::Result<Self> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("CA key")?;
        Self::from_key(key)
    }

    fn from_key(key: KeyPair) -> anyhow::Result<Self> {
        let cert = ca_params().self_signed(&key).context("CA certificate")?;
        Ok(Self { cert, key })
    }

    /// Writes DIR/ek-ca.pem (for `runtrust init --ek-ca`) and DIR/ek-ca-key.pem (mode 0600).
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cert_path = dir.join(CA_CERT_FILE);
        std::fs::write(&cert_path, self.cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
        runtrust::fsutil::write_private(&dir.join(CA_KEY_FILE), self.key.serialize_pem().as_bytes())
            .with_context(|| format!("writing {}", dir.join(CA_KEY_FILE).display()))?;
        Ok(cert_path)
    }

    /// The CA that [`TestCa::write`] wrote to `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(CA_KEY_FILE);
        let pem = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_key(KeyPair::from_pem(&pem).map_err(|e| anyhow!("{}: {e}", path.display()))?)
    }

    /// An EK certificate (DER) for the P-256 EK whose SEC1 uncompressed point is `ek_point`.
    pub fn issue_ek_certificate(&self, ek_point: &[u8], serial: u64) -> anyhow::Result<Vec<u8>> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("runtrust-loadgen EK {serial}"));
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::KeyAgreement];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(TCG_KP_EK_CERTIFICATE.to_vec())];
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2099, 12, 31);
        // Serial 1 is the CA's.
        p.serial_number = Some(SerialNumber::from(serial.saturating_add(2)));
        let cert = p.signed_by(&EkKey(ek_point), &self.cert, &self.key).context("EK certificate")?;
        Ok(cert.der().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use runtrust_attestation::ek::{verify_ek_certificate, TrustAnchors};

    use super::*;
    use crate::soft_tpm::SoftTpm;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn ek_certificates_chain_to_the_written_anchor_and_certify_the_ek() {
        let dir = std::env::temp_dir().join(format!("runtrust-loadgen-ca-test-{}", std::process::id()));
        let ca = TestCa::generate().unwrap();
        let cert_path = ca.write(&dir).unwrap();
        // Issue with a CA rebuilt from the key on disk, verify against the anchor written first.
        let reloaded = TestCa::load(&dir).unwrap();
        let anchors = TrustAnchors::from_pem(&std::fs::read(&cert_path).unwrap()).unwrap();
        let tpm = SoftTpm::new().unwrap();
        let der = reloaded.issue_ek_certificate(&tpm.ek_point(), 7).unwrap();
        verify_ek_certificate(&der, &[], &anchors, tpm.ek(), NOW).unwrap();
        // It certifies this EK only.
        let other = SoftTpm::new().unwrap();
        assert!(verify_ek_certificate(&der, &[], &anchors, other.ek(), NOW).is_err());
        // Another CA's certificate does not chain.
        let stranger = TestCa::generate().unwrap().issue_ek_certificate(&tpm.ek_point(), 7).unwrap();
        assert!(verify_ek_certificate(&stranger, &[], &anchors, tpm.ek(), NOW).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
