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
    /// Enroll with this join token (a file, from `runtrust join-token create`) instead of an attester
    /// credential. On success the host's own credential is written to STATE_DIR/credential (mode 0600) and
    /// used by later commands on this host.
    #[arg(long, value_name = "FILE")]
    join_token: Option<std::path::PathBuf>,
}

pub fn run(a: EnrollArgs, g: &GlobalOpts) -> CliResult {
    let client = match &a.join_token {
        Some(file) => {
            let mut opts = g.client_options();
            opts.credential = Some(file.clone());
            opts.connect().map_err(super::CliError::from)?
        }
        None => g.client()?,
    };
    let intermediates = match &a.ek_intermediates {
        Some(p) => pem_certificates(p)?,
        None => Vec::new(),
    };
    // Through the agent when it answers (it activates the credential with its EK and AK), else the TPM.
    let mut tpm = g.open_tpm()?;
    let enrolled = enroll(&client, tpm.as_mut(), &a.tags, intermediates)?;
    // docs/design.md §5: a host that joined keeps its own credential, 0600, in its state directory.
    let saved = match &enrolled.credential {
        Some(credential) => {
            let dir = g.state_dir();
            std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            let path = dir.join(super::JOINED_CREDENTIAL);
            crate::fsutil::write_private(&path, format!("{credential}\n").as_bytes())
                .map_err(|e| anyhow::anyhow!("saving this host's credential to {}: {e}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    if g.json {
        print_json(&json!({
            "host_id": enrolled.host_id,
            "ak_name": enrolled.ak_name,
            "new": enrolled.new,
            "tags": enrolled.tags,
            "principal": enrolled.principal,
            "credential_file": saved,
        }));
    } else {
        if !enrolled.new {
            eprintln!("runtrust: already enrolled with this AK (nothing changed)");
        }
        eprintln!("runtrust: tags [{}]", enrolled.tags.join(", "));
        if let (Some(principal), Some(path)) = (&enrolled.principal, &saved) {
            eprintln!("runtrust: joined as principal {principal}; its credential is in {} (0600)", path.display());
        }
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
