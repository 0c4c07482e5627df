//! The AK's blobs in the host state directory, so that the same AK is reloaded on every run.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{KeyAlg, TpmError};
use crate::fsutil;

/// Default host state directory: /var/lib/runtrust for root, else $XDG_STATE_HOME/runtrust
/// (or ~/.local/state/runtrust).
#[allow(unsafe_code)]
pub fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/runtrust");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("runtrust");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/runtrust"),
        None => PathBuf::from(".runtrust"),
    }
}

/// The AK as stored: TPM2B_PUBLIC and TPM2B_PRIVATE (the formats tpm2_load takes), plus the Name of
/// the EK it was created under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AkBlobs {
    pub public: Vec<u8>,
    pub private: Vec<u8>,
    pub ek_name: Vec<u8>,
}

impl AkBlobs {
    fn paths(dir: &Path, ek: KeyAlg, ak: KeyAlg) -> [PathBuf; 3] {
        let stem = format!("ak-{}-under-{}-ek", ak.name(), ek.name());
        ["pub", "priv", "ekname"].map(|ext| dir.join(format!("{stem}.{ext}")))
    }

    /// Loads the blobs, or None if this state dir has no AK of this kind yet.
    pub fn load(dir: &Path, ek: KeyAlg, ak: KeyAlg) -> Result<Option<Self>, TpmError> {
        let [p_pub, p_priv, p_ek] = Self::paths(dir, ek, ak);
        let read = |p: &Path| match fs::read(p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TpmError::State { path: p.to_owned(), source }),
        };
        match (read(&p_pub)?, read(&p_priv)?, read(&p_ek)?) {
            (Some(public), Some(private), Some(ek_hex)) => {
                let ek_name = hex::decode(String::from_utf8_lossy(&ek_hex).trim())
                    .map_err(|e| TpmError::CorruptAk { path: p_ek, detail: e.to_string() })?;
                Ok(Some(Self { public, private, ek_name }))
            }
            // The private blob is written last: without it, no AK was ever completely stored.
            (_, None, _) => Ok(None),
            _ => Err(TpmError::CorruptAk {
                path: p_pub,
                detail: "some of the AK files are missing; remove the ak-* files to create a new AK".into(),
            }),
        }
    }

    /// Stores the blobs durably, mode 0600 (private last, so a crash never leaves a half AK that loads).
    pub fn store(&self, dir: &Path, ek: KeyAlg, ak: KeyAlg) -> Result<(), TpmError> {
        fn state(path: &Path) -> impl FnOnce(std::io::Error) -> TpmError + '_ {
            move |source| TpmError::State { path: path.to_owned(), source }
        }
        fsutil::create_private_dir(dir).map_err(state(dir))?;
        let [p_pub, p_priv, p_ek] = Self::paths(dir, ek, ak);
        fsutil::write_private(&p_ek, hex::encode(&self.ek_name).as_bytes()).map_err(state(&p_ek))?;
        fsutil::write_private(&p_pub, &self.public).map_err(state(&p_pub))?;
        fsutil::write_private(&p_priv, &self.private).map_err(state(&p_priv))?;
        Ok(())
    }
}
