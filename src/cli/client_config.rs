//! The client configuration file (docs/design.md §9): what a host or an operator's machine would otherwise
//! pass as flags or environment on every command. Flag > environment > this file > default.
//!
//! Looked up at `$RUNTRUST_CLIENT_CONFIG`, else `$XDG_CONFIG_HOME/runtrust/client.toml` (default
//! `~/.config/runtrust/client.toml`), else `/etc/runtrust/client.toml`; the first that exists is read, and
//! only that one. Relative paths in it are relative to the file's directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Largest client config file read (it holds a few lines).
const MAX_BYTES: u64 = 64 * 1024;

/// `client.toml`: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub server: Option<String>,
    pub server_ca: Option<PathBuf>,
    pub credential: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub tcti: Option<String>,
    pub agent: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("{path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path}: {detail} (keys: server, server_ca, credential, state_dir, tcti, agent)")]
    Parse { path: String, detail: String },
}

/// Where the client config is looked for, in order, given the environment `var`.
pub fn candidates(var: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    if let Some(p) = var("RUNTRUST_CLIENT_CONFIG").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut out = Vec::new();
    match var("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        Some(x) => out.push(Path::new(&x).join("runtrust/client.toml")),
        None => {
            if let Some(home) = var("HOME").filter(|p| !p.is_empty()) {
                out.push(Path::new(&home).join(".config/runtrust/client.toml"));
            }
        }
    }
    out.push(PathBuf::from("/etc/runtrust/client.toml"));
    out
}

/// The first existing file of [`candidates`], parsed strictly; None if there is none. A file named by
/// `$RUNTRUST_CLIENT_CONFIG` must exist.
pub fn load(var: impl Fn(&str) -> Option<String>) -> Result<Option<(PathBuf, ClientConfig)>, ClientConfigError> {
    let explicit = var("RUNTRUST_CLIENT_CONFIG").is_some_and(|p| !p.is_empty());
    for path in candidates(var) {
        if !explicit && !path.exists() {
            continue;
        }
        return read(&path).map(|c| Some((path, c)));
    }
    Ok(None)
}

fn read(path: &Path) -> Result<ClientConfig, ClientConfigError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let err = |detail: String| ClientConfigError::Read { path: shown.clone(), detail };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_BYTES + 1).read_to_string(&mut text).map_err(|e| err(e.to_string()))?;
    if text.len() as u64 > MAX_BYTES {
        return Err(err(format!("larger than {MAX_BYTES} bytes")));
    }
    let mut c: ClientConfig =
        toml::from_str(&text).map_err(|e| ClientConfigError::Parse { path: shown.clone(), detail: e.to_string() })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    for p in [&mut c.server_ca, &mut c.credential, &mut c.state_dir, &mut c.agent].into_iter().flatten() {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn lookup_order() {
        assert_eq!(
            candidates(env(&[("HOME", "/home/a")])),
            vec![PathBuf::from("/home/a/.config/runtrust/client.toml"), PathBuf::from("/etc/runtrust/client.toml")]
        );
        assert_eq!(
            candidates(env(&[("HOME", "/h"), ("XDG_CONFIG_HOME", "/x")]))[0],
            Path::new("/x/runtrust/client.toml")
        );
        assert_eq!(candidates(env(&[("RUNTRUST_CLIENT_CONFIG", "/c.toml")])), vec![PathBuf::from("/c.toml")]);
    }

    #[test]
    fn strict_parse_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.toml");
        std::fs::write(&file, "server = \"https://rt:8443\"\nserver_ca = \"ca.pem\"\ncredential = \"/abs/c\"\n")
            .unwrap();
        let f = file.to_str().unwrap();
        let (_, c) = load(env(&[("RUNTRUST_CLIENT_CONFIG", f)])).unwrap().unwrap();
        assert_eq!(c.server.as_deref(), Some("https://rt:8443"));
        assert_eq!(c.server_ca, Some(dir.path().join("ca.pem")), "relative to the file");
        assert_eq!(c.credential, Some(PathBuf::from("/abs/c")));

        std::fs::write(&file, "sever = \"typo\"\n").unwrap();
        let e = load(env(&[("RUNTRUST_CLIENT_CONFIG", f)])).unwrap_err().to_string();
        assert!(e.contains("sever") && e.contains("keys: server"), "{e}");
        std::fs::write(&file, "x".repeat(70_000)).unwrap();
        assert!(load(env(&[("RUNTRUST_CLIENT_CONFIG", f)])).unwrap_err().to_string().contains("larger than"));
        let missing = dir.path().join("none.toml");
        assert!(load(env(&[("RUNTRUST_CLIENT_CONFIG", missing.to_str().unwrap())])).is_err(), "named: must exist");
        let home = dir.path().to_str().unwrap();
        assert!(load(env(&[("HOME", home), ("XDG_CONFIG_HOME", home)]))
            .unwrap()
            .is_none_or(|(p, _)| p.starts_with("/etc")));
    }
}
