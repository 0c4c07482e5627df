//! Edits of `D/config.toml` that keep the operator's comments and layout (toml_edit): the issuer key list
//! (`keys rotate`, `keys retire`) and the EK anchors (`ek-ca add`, `ek-ca remove`). An edit that would leave
//! a config `serve` cannot load is not written.

use std::path::{Path, PathBuf};

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

use super::{ConfigError, IssuerKeyFile, ServiceConfig, CONFIG_FILE};
use crate::fsutil;

/// Applies `edit` to the data directory's config file and writes it atomically (0644: it holds no secret).
pub fn edit_config(
    data_dir: &Path,
    edit: impl FnOnce(&mut DocumentMut) -> Result<(), String>,
) -> Result<ServiceConfig, ConfigError> {
    let path = data_dir.join(CONFIG_FILE);
    let invalid = |detail: String| ConfigError::Invalid { path: path.clone(), detail };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| invalid(e.to_string()))?;
    edit(&mut doc).map_err(invalid)?;
    let edited = doc.to_string();
    let config: ServiceConfig = toml::from_str(&edited).map_err(|e| invalid(format!("after the edit: {e}")))?;
    fsutil::write_atomic(&path, edited.as_bytes(), 0o644).map_err(|source| ConfigError::Io { path, source })?;
    Ok(config)
}

/// `[[issuer.keys]]` set to `keys`, oldest first. Entries that stay keep their comments.
pub fn set_issuer_keys(doc: &mut DocumentMut, keys: &[IssuerKeyFile]) -> Result<(), String> {
    let issuer = table(doc.as_table_mut(), "issuer").ok_or("issuer is not a table")?;
    let mut old = match issuer.remove("keys") {
        Some(Item::ArrayOfTables(a)) => a,
        _ => ArrayOfTables::new(),
    };
    let mut new = ArrayOfTables::new();
    for k in keys {
        let path = k.path.to_string_lossy();
        let kept = (0..old.len())
            .find(|&i| old.get(i).and_then(|t| t.get("path")).and_then(Item::as_str) == Some(path.as_ref()));
        let entry = match kept {
            Some(i) => {
                let t = old.get(i).cloned().unwrap_or_default();
                old.remove(i);
                t
            }
            None => {
                let mut t = Table::new();
                t.insert("path", toml_edit::value(path.as_ref()));
                t.insert("alg", toml_edit::value(k.alg.to_string()));
                t
            }
        };
        new.push(entry);
    }
    issuer.insert("keys", Item::ArrayOfTables(new));
    Ok(())
}

/// `ek.anchors` set to `anchors`; an existing array keeps its formatting for the entries that stay.
pub fn set_ek_anchors(doc: &mut DocumentMut, anchors: &[PathBuf]) -> Result<(), String> {
    let ek = table(doc.as_table_mut(), "ek").ok_or("ek is not a table")?;
    if ek.get("anchors").is_none_or(|i| i.as_array().is_none()) {
        ek.insert("anchors", toml_edit::value(Array::new()));
    }
    // Edited in place, so that the key keeps its comments.
    let array = ek.get_mut("anchors").and_then(Item::as_array_mut).ok_or("ek.anchors is not an array")?;
    array.retain(|v| v.as_str().is_some_and(|s| anchors.iter().any(|a| a.to_string_lossy() == s)));
    for a in anchors {
        let s = a.to_string_lossy();
        if !array.iter().any(|v| v.as_str() == Some(s.as_ref())) {
            array.push(Value::from(s.as_ref()));
        }
    }
    array.fmt();
    Ok(())
}

/// The table `name` of `root`: created if missing (a config written before it existed), an inline table
/// (`ek = { anchors = [...] }`) made a standard one with its entries.
fn table<'a>(root: &'a mut Table, name: &str) -> Option<&'a mut Table> {
    let item = root.entry(name).or_insert(Item::Table(Table::new()));
    if let Item::Value(Value::InlineTable(inline)) = item {
        *item = Item::Table(std::mem::take(inline).into_table());
    }
    item.as_table_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SigningAlg;

    const CONFIG: &str = r#"# runtrust service configuration (ours: keep)
service_id = "svc"
listen = "127.0.0.1:0"

[tls]
ca = "tls/ca.pem"
cert = "tls/cert.pem"
key = "tls/key.pem"

# signing keys: the last one signs
[[issuer.keys]]
path = "issuer-1.pk8" # the first key
alg = "eddsa"

[ek]
# vendor roots
anchors = ["ek-ca/a.pem"]
"#;

    fn key(n: u32) -> IssuerKeyFile {
        IssuerKeyFile { path: PathBuf::from(format!("issuer-{n}.pk8")), alg: SigningAlg::EdDsa }
    }

    fn write(dir: &Path) {
        std::fs::write(dir.join(CONFIG_FILE), CONFIG).unwrap();
    }

    #[test]
    fn a_key_added_and_one_retired_keep_every_comment() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path());
        let cfg = edit_config(dir.path(), |d| set_issuer_keys(d, &[key(1), key(2)])).unwrap();
        assert_eq!(cfg.issuer.keys, vec![key(1), key(2)]);
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        for comment in
            ["# runtrust service configuration (ours: keep)", "# signing keys", "# the first key", "# vendor roots"]
        {
            assert!(text.contains(comment), "{comment:?} lost:\n{text}");
        }
        let cfg = edit_config(dir.path(), |d| set_issuer_keys(d, &[key(2)])).unwrap();
        assert_eq!(cfg.issuer.keys, vec![key(2)]);
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        assert!(!text.contains("issuer-1.pk8") && text.contains("# vendor roots"), "{text}");
    }

    #[test]
    fn anchors_are_added_and_removed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path());
        let both = [PathBuf::from("ek-ca/a.pem"), PathBuf::from("ek-ca/b.pem")];
        let cfg = edit_config(dir.path(), |d| set_ek_anchors(d, &both)).unwrap();
        assert_eq!(cfg.ek.anchors, both);
        let cfg = edit_config(dir.path(), |d| set_ek_anchors(d, &both[1..])).unwrap();
        assert_eq!(cfg.ek.anchors, &both[1..]);
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        assert!(text.contains("# vendor roots") && text.contains("# the first key"), "{text}");
    }

    #[test]
    fn an_edit_that_breaks_the_config_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path());
        let r = edit_config(dir.path(), |d| {
            d.insert("unknown_setting", toml_edit::value(1));
            Ok(())
        });
        assert!(matches!(r, Err(ConfigError::Invalid { .. })), "{r:?}");
        assert_eq!(std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap(), CONFIG);
    }
}
