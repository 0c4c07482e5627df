//! One-line, human-readable summaries of event data (for `runtrust eventlog show`). Best effort and never
//! failing: a summary is for reading, not for decisions (see [`super::facts`] for those).

use super::event_type::*;
use super::facts::{image_path, signature_lists, variable_data};
use super::parse::{SPEC_ID_SIGNATURE, STARTUP_LOCALITY_SIGNATURE};
use super::Event;

/// Longest text a summary quotes.
const MAX_TEXT: usize = 200;

/// A summary of `event`'s data.
pub fn describe(event: &Event) -> String {
    let data = &event.data;
    match event.event_type {
        EV_NO_ACTION if data.starts_with(SPEC_ID_SIGNATURE) => "Spec ID Event03 (crypto-agile log header)".into(),
        EV_NO_ACTION if data.starts_with(STARTUP_LOCALITY_SIGNATURE) => {
            format!("StartupLocality {}", data.get(16).copied().unwrap_or_default())
        }
        EV_SEPARATOR => format!("separator {}", hex::encode(data)),
        EV_S_CRTM_VERSION => utf16(data).map_or_else(|| bytes(data), |s| format!("version {s:?}")),
        EV_EFI_VARIABLE_DRIVER_CONFIG | EV_EFI_VARIABLE_BOOT | EV_EFI_VARIABLE_BOOT2 | EV_EFI_VARIABLE_AUTHORITY => {
            match variable_data(event) {
                Ok(var) => {
                    let base = data.len() - var.data.len();
                    let detail = match var.name.as_str() {
                        "SecureBoot" => format!("= {}", hex::encode(var.data)),
                        "PK" | "KEK" | "db" | "dbx" if event.event_type == EV_EFI_VARIABLE_DRIVER_CONFIG => {
                            match signature_lists(event, base) {
                                Ok(lists) => {
                                    let n: usize = lists.iter().map(|l| l.signatures.len()).sum();
                                    format!("{} signature list(s), {n} entries", lists.len())
                                }
                                Err(e) => format!("malformed signature lists: {e}"),
                            }
                        }
                        _ => format!("{} bytes", var.data.len()),
                    };
                    format!("{} {} {detail}", var.guid, var.name)
                }
                Err(_) => bytes(data),
            }
        }
        EV_EFI_BOOT_SERVICES_APPLICATION | EV_EFI_BOOT_SERVICES_DRIVER | EV_EFI_RUNTIME_SERVICES_DRIVER => {
            image_path(data).map_or_else(|| format!("image, {}", bytes(data)), |p| format!("image {p}"))
        }
        EV_EFI_ACTION | EV_ACTION | EV_IPL | EV_POST_CODE | EV_EVENT_TAG | EV_NO_ACTION | EV_PLATFORM_CONFIG_FLAGS => {
            text(data).or_else(|| utf16(data)).map_or_else(|| bytes(data), |s| format!("{s:?}"))
        }
        _ => bytes(data),
    }
}

fn bytes(data: &[u8]) -> String {
    format!("{} bytes", data.len())
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Printable ASCII (tabs and newlines allowed), without a trailing NUL.
fn text(data: &[u8]) -> Option<String> {
    let t = data.strip_suffix(b"\0").unwrap_or(data);
    let printable = !t.is_empty() && t.iter().all(|&b| b.is_ascii_graphic() || b" \t\n\r".contains(&b));
    printable.then(|| clip(&String::from_utf8_lossy(t)))
}

/// UTF-16LE text (what UEFI writes), without a trailing NUL.
fn utf16(data: &[u8]) -> Option<String> {
    if data.len() < 2 || data.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let units = units.strip_suffix(&[0]).unwrap_or(&units);
    let s = String::from_utf16(units).ok()?;
    (!s.is_empty() && s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t')).then(|| clip(&s))
}
