//! `runtrust quote verify`: appraise a quote offline, as the service would.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;
use runtrust_attestation::ak::check_ak;
use runtrust_attestation::quote::verify_quote_with_key;
use runtrust_attestation::tpm2::{EccCurve, PublicKey, SigScheme};
use runtrust_attestation::{DenialCode, PcrValues, Public, QuoteEvidence, QuoteOptions};
use serde_json::json;

use super::args::{parse_hex, Hex};
use super::tpm2_tools::parse_pcr_file;
use super::tpm_cmd::read_file;
use super::{print_json, CliError, CliResult, GlobalOpts};

#[derive(Subcommand, Debug)]
pub enum QuoteCommand {
    /// Verify a TPM quote: AK signature, nonce, signed PCR selection, pcrDigest, clock.
    ///
    /// Exit 0 when the quote is genuine; 3 with the denial code on stderr when it is not.
    #[command(after_help = "Interoperates with tpm2-tools:\n  tpm2_createak -C ek.ctx -c ak.ctx -u ak.pub\n  \
tpm2_quote -c ak.ctx -l sha256:0-7 -q NONCE -m attest -s signature -o pcrs.bin\n  \
runtrust quote verify --ak-public ak.pub --attest attest --signature signature --nonce NONCE --pcrs pcrs.bin")]
    Verify {
        /// The AK: TPM2B_PUBLIC (tpm2_createak -u, runtrust tpm quote's ak.pub) or a PEM public key.
        #[arg(long, value_name = "FILE")]
        ak_public: PathBuf,
        /// TPMS_ATTEST bytes (tpm2_quote -m).
        #[arg(long, value_name = "FILE")]
        attest: PathBuf,
        /// TPMT_SIGNATURE bytes (tpm2_quote -s, default tss format).
        #[arg(long, value_name = "FILE")]
        signature: PathBuf,
        /// The nonce the quote must carry, as hex.
        #[arg(long, value_parser = parse_hex)]
        nonce: Hex,
        /// The claimed PCR values: pcrs.json or tpm2_quote -o output. Without it, only the signature,
        /// nonce and clock are checked, and the PCR values are unknown.
        #[arg(long, value_name = "FILE")]
        pcrs: Option<PathBuf>,
        /// Accept SHA-1 signatures, PCR digests and AK names (legacy TPMs only).
        #[arg(long)]
        allow_sha1: bool,
    },
}

/// An AK given as PEM: a SubjectPublicKeyInfo, without TPM attributes.
fn pem_key(pem: &[u8]) -> Result<PublicKey, String> {
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey as Spki;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not PEM: {e}"))?;
    let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&pem.contents)
        .map_err(|e| format!("PEM is not a public key: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the public key".into());
    }
    match spki.parsed().map_err(|e| format!("public key: {e}"))? {
        Spki::RSA(rsa) => {
            let modulus = rsa.modulus.iter().skip_while(|&&b| b == 0).copied().collect::<Vec<_>>();
            let exponent = u32::try_from(rsa.try_exponent().map_err(|e| e.to_string())?)
                .map_err(|_| "RSA exponent too large".to_string())?;
            let key_bits = u16::try_from(modulus.len() * 8).map_err(|_| "RSA key too large".to_string())?;
            Ok(PublicKey::Rsa { key_bits, exponent, modulus })
        }
        Spki::EC(point) => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            let curve = match curve_oid.as_str() {
                "1.2.840.10045.3.1.7" => EccCurve::NistP256,
                "1.3.132.0.34" => EccCurve::NistP384,
                other => return Err(format!("unsupported curve {other}")),
            };
            let n = curve.coordinate_len();
            let data = point.data();
            if data.len() != 1 + 2 * n || data[0] != 4 {
                return Err("EC point is not uncompressed".into());
            }
            Ok(PublicKey::Ecc { curve, x: data[1..=n].to_vec(), y: data[1 + n..].to_vec() })
        }
        _ => Err("unsupported public key type (RSA or EC expected)".into()),
    }
}

pub fn run(cmd: QuoteCommand, g: &GlobalOpts) -> CliResult {
    let QuoteCommand::Verify { ak_public, attest, signature, nonce: Hex(nonce), pcrs, allow_sha1 } = cmd;
    let ak_bytes = read_file(&ak_public, "AK public")?;
    let attest = read_file(&attest, "attest")?;
    let signature = read_file(&signature, "signature")?;
    let claimed = match &pcrs {
        Some(p) => parse_pcr_file(&read_file(p, "PCR file")?).map_err(|e| anyhow!("{}: {e}", p.display()))?,
        None => PcrValues::new(),
    };

    let (key, scheme, ak_name): (PublicKey, Option<SigScheme>, Option<String>) = if ak_bytes.starts_with(b"-----BEGIN")
    {
        let key = pem_key(&ak_bytes).map_err(|e| CliError::denied(DenialCode::AkInvalid, e))?;
        eprintln!("runtrust: note: AK given as PEM: its TPM attributes and scheme cannot be checked");
        (key, None, None)
    } else {
        let ak = Public::from_tpm2b(&ak_bytes)
            .map_err(|e| CliError::denied(DenialCode::AkInvalid, format!("{}: {e}", ak_public.display())))?;
        check_ak(&ak, allow_sha1).map_err(|e| CliError::denied(e.code(), e))?;
        let name = hex::encode(ak.name());
        (ak.key.clone(), ak.signing_scheme(), Some(name))
    };

    let evidence = QuoteEvidence { attest: &attest, signature: &signature, pcrs: &claimed };
    let opts = QuoteOptions { allow_sha1, ..Default::default() };
    let verified = match verify_quote_with_key(&key, scheme, &evidence, &nonce, &opts) {
        Ok(v) => v,
        // Without --pcrs, the values are simply unknown: everything else has been checked by then.
        Err(runtrust_attestation::QuoteError::PcrSelectionMismatch { .. }) if pcrs.is_none() => {
            let a = runtrust_attestation::Attest::parse_quote(&attest)
                .map_err(|e| CliError::denied(DenialCode::QuoteMalformed, e))?;
            runtrust_attestation::clock::check_clock(&a.clock_info, None).map_err(|e| CliError::denied(e.code(), e))?;
            let sel = a.quote.pcr_select.to_string();
            report(g, ak_name.as_deref(), &a, None, &sel);
            return Ok(());
        }
        Err(e) => return Err(CliError::denied(e.code(), e)),
    };
    let sel = verified.attest.quote.pcr_select.to_string();
    report(g, ak_name.as_deref(), &verified.attest, Some(&verified.pcrs), &sel);
    Ok(())
}

fn report(
    g: &GlobalOpts,
    ak_name: Option<&str>,
    a: &runtrust_attestation::Attest,
    pcrs: Option<&PcrValues>,
    sel: &str,
) {
    let c = &a.clock_info;
    if g.json {
        print_json(&json!({
            "valid": true,
            "ak_name": ak_name,
            "selection": sel,
            "pcr_digest": hex::encode(&a.quote.pcr_digest),
            "pcrs_verified": pcrs.is_some(),
            "pcrs": pcrs,
            "clock_info": c,
            "firmware_version": format!("{:#018x}", a.firmware_version),
        }));
    } else {
        println!("quote valid: signed by AK {}", ak_name.unwrap_or("(PEM key)"));
        println!(
            "  PCRs {sel}: {}",
            if pcrs.is_some() { "values match pcrDigest" } else { "values not given (--pcrs)" }
        );
        println!("  pcrDigest {}", hex::encode(&a.quote.pcr_digest));
        println!(
            "  clock {} ms, resetCount {}, restartCount {}, safe {}",
            c.clock, c.reset_count, c.restart_count, c.safe
        );
    }
}
