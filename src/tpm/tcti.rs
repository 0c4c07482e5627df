//! TCTI selection (docs/design.md §9): `--tcti`, then RUNTRUST_TCTI, TPM2TOOLS_TCTI, TCTI, then the kernel's
//! resource manager.

/// The in-kernel resource manager: what a real host should use.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// Environment variables consulted, in order, when no `--tcti` flag is given.
pub const TCTI_ENV: [&str; 3] = ["RUNTRUST_TCTI", "TPM2TOOLS_TCTI", "TCTI"];

/// The TCTI to use: the flag, else the first non-empty variable of [`TCTI_ENV`], else [`DEFAULT_TCTI`].
pub fn resolve_tcti(flag: Option<&str>, env: impl Fn(&str) -> Option<String>) -> String {
    if let Some(f) = flag.filter(|f| !f.is_empty()) {
        return f.to_owned();
    }
    TCTI_ENV.iter().find_map(|name| env(name).filter(|v| !v.is_empty())).unwrap_or_else(|| DEFAULT_TCTI.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let env = |k: &str| match k {
            "TPM2TOOLS_TCTI" => Some("swtpm:port=1".to_owned()),
            "TCTI" => Some("mssim".to_owned()),
            _ => None,
        };
        assert_eq!(resolve_tcti(Some("device:/dev/tpm0"), env), "device:/dev/tpm0");
        assert_eq!(resolve_tcti(None, env), "swtpm:port=1");
        assert_eq!(resolve_tcti(None, |_| None), DEFAULT_TCTI);
        assert_eq!(resolve_tcti(None, |k| (k == "RUNTRUST_TCTI").then(String::new)), DEFAULT_TCTI);
    }
}
