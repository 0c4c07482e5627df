//! `runtrust enroll`: this host, with its TPM, in front of the service.

use serde_json::json;

use super::{print_json, CliResult, GlobalOpts};
use crate::client::enroll::enroll;

#[derive(clap::Args, Debug)]
pub struct EnrollArgs {
    /// Ask for only this one of the tags your principal confers (e.g. role=web); repeatable. Default: all of
    /// them. A host enrolled before keeps its tags; only an admin changes them (runtrust hosts tag).
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// PEM file of intermediate CA certificates for the EK certificate (vendor intermediates the service
    /// does not hold as anchors).
    #[arg(long, value_name = "PEM")]
    ek_intermediates: Option<std::path::PathBuf>,
}

pub fn run(a: EnrollArgs, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    let intermediates = match &a.ek_intermediates {
        Some(p) => pem_certificates(p)?,
        None => Vec::new(),
    };
    // Through the agent when it answers (it activates the credential with its EK and AK), else the TPM.
    let mut tpm = g.open_tpm()?;
    let enrolled = enroll(&client, tpm.as_mut(), &a.tags, intermediates)?;
    if g.json {
        print_json(&json!({
            "host_id": enrolled.host_id,
            "ak_name": enrolled.ak_name,
            "new": enrolled.new,
            "tags": enrolled.tags,
        }));
    } else {
        if !enrolled.new {
            eprintln!("runtrust: already enrolled with this AK (nothing changed)");
        }
        eprintln!("runtrust: tags [{}]", enrolled.tags.join(", "));
        println!("{}", enrolled.host_id);
    }
    Ok(())
}

/// The DER of every CERTIFICATE block in a PEM file.
fn pem_certificates(path: &std::path::Path) -> Result<Vec<Vec<u8>>, super::CliError> {
    let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // The same strict parser as the service's EK anchors: every block must be one DER certificate.
    let certs = runtrust_attestation::ek::TrustAnchors::from_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(certs.der_certs().to_vec())
}
