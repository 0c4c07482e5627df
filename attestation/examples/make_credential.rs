//! Software TPM2_MakeCredential from files, for `tests/credential/activate.sh`:
//!
//!     make_credential EK_TPM2B_PUBLIC AK_NAME SECRET_HEX OUT
//!
//! EK_TPM2B_PUBLIC is what `tpm2_createek -u` writes, AK_NAME what `tpm2_createak -n` writes; OUT is the
//! credential file `tpm2_activatecredential -i` reads.

use std::process::ExitCode;

use runtrust_attestation::credential::{make_credential, tpm2_tools_credential_file};
use runtrust_attestation::Public;

fn run(args: &[String]) -> Result<(), String> {
    let [ek_path, name_path, secret_hex, out_path] = args else {
        return Err("usage: make_credential EK_TPM2B_PUBLIC AK_NAME SECRET_HEX OUT".into());
    };
    let ek_bytes = std::fs::read(ek_path).map_err(|e| format!("{ek_path}: {e}"))?;
    let ek = Public::from_tpm2b(&ek_bytes).map_err(|e| format!("{ek_path}: {e}"))?;
    let ak_name = std::fs::read(name_path).map_err(|e| format!("{name_path}: {e}"))?;
    let secret = hex::decode(secret_hex.trim()).map_err(|e| format!("secret: {e}"))?;
    let rng = ring::rand::SystemRandom::new();
    let made = make_credential(&ek, &ak_name, &secret, &rng).map_err(|e| format!("{} ({})", e, e.code()))?;
    let file = tpm2_tools_credential_file(&made).map_err(|e| e.to_string())?;
    std::fs::write(out_path, &file).map_err(|e| format!("{out_path}: {e}"))?;
    println!(
        "{}: {} {}, credentialBlob {} bytes, encryptedSecret {} bytes",
        out_path,
        ek.key.describe(),
        ek.name_alg,
        made.credential_blob.len(),
        made.encrypted_secret.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make_credential: {e}");
            ExitCode::FAILURE
        }
    }
}
