//! Writing crypto-agile event logs (PFP §10.2.2 TCG_PCR_EVENT2 after a §9.4.5.1 Spec ID event), for tests
//! and for simulated TPMs, which have no firmware and so no log: choose events, extend the TPM with
//! [`LogBuilder::extends`], and the log replays to its PCRs.

use crate::tpm2::HashAlg;

use super::event_type::*;
use super::facts::{
    Guid, EFI_CERT_SHA256_GUID, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE_GUID, UEFI_DEBUG_MODE,
};

/// One PCR extension a log records: PCR index and the digest in each bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extend {
    pub pcr: u8,
    pub digests: Vec<(HashAlg, Vec<u8>)>,
}

/// A crypto-agile log under construction.
#[derive(Clone, Debug)]
pub struct LogBuilder {
    banks: Vec<HashAlg>,
    bytes: Vec<u8>,
    extends: Vec<Extend>,
}

impl LogBuilder {
    /// A log whose events carry a digest in each of `banks`, in that order.
    pub fn new(banks: &[HashAlg]) -> Self {
        let mut spec = b"Spec ID Event03\0".to_vec();
        spec.extend_from_slice(&0u32.to_le_bytes()); // platformClass: client
        spec.extend_from_slice(&[0, 2, 0, 2]); // specVersionMinor, Major, specErrata, uintnSize (64-bit)
        spec.extend_from_slice(&(banks.len() as u32).to_le_bytes());
        for bank in banks {
            spec.extend_from_slice(&bank.alg_id().to_le_bytes());
            spec.extend_from_slice(&(bank.digest_len() as u16).to_le_bytes());
        }
        spec.push(0); // vendorInfoSize
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
        bytes.extend_from_slice(&[0; 20]);
        bytes.extend_from_slice(&(spec.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&spec);
        Self { banks: banks.to_vec(), bytes, extends: Vec::new() }
    }

    /// An event with explicit digests (one per bank, in bank order); extended unless EV_NO_ACTION.
    pub fn event_with_digests(&mut self, pcr: u8, event_type: u32, digests: Vec<Vec<u8>>, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(&u32::from(pcr).to_le_bytes());
        self.bytes.extend_from_slice(&event_type.to_le_bytes());
        self.bytes.extend_from_slice(&(digests.len() as u32).to_le_bytes());
        for (bank, digest) in self.banks.iter().zip(&digests) {
            self.bytes.extend_from_slice(&bank.alg_id().to_le_bytes());
            self.bytes.extend_from_slice(digest);
        }
        self.bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(data);
        if event_type != EV_NO_ACTION {
            self.extends.push(Extend { pcr, digests: self.banks.iter().copied().zip(digests).collect() });
        }
        self
    }

    /// An event whose digests are the hashes of `measured`.
    pub fn event_measuring(&mut self, pcr: u8, event_type: u32, measured: &[u8], data: &[u8]) -> &mut Self {
        let digests = self.banks.iter().map(|b| b.digest(measured)).collect();
        self.event_with_digests(pcr, event_type, digests, data)
    }

    /// An event whose digests are the hashes of its data.
    pub fn event(&mut self, pcr: u8, event_type: u32, data: &[u8]) -> &mut Self {
        self.event_measuring(pcr, event_type, data, data)
    }

    /// EV_S_CRTM_VERSION in PCR 0: a UCS-2 string with its NUL (PFP §3.3.4.1).
    pub fn s_crtm_version(&mut self, version: &str) -> &mut Self {
        let data: Vec<u8> = version.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
        self.event(0, EV_S_CRTM_VERSION, &data)
    }

    /// EV_EFI_VARIABLE_DRIVER_CONFIG in PCR 7 (PFP §3.3.4.8).
    pub fn variable(&mut self, guid: Guid, name: &str, data: &[u8]) -> &mut Self {
        self.event(7, EV_EFI_VARIABLE_DRIVER_CONFIG, &variable_data(guid, name, data))
    }

    /// The SecureBoot variable: 1 or 0.
    pub fn secure_boot(&mut self, on: bool) -> &mut Self {
        self.variable(EFI_GLOBAL_VARIABLE, "SecureBoot", &[u8::from(on)])
    }

    /// PK, KEK, db and dbx, each given as EFI_SIGNATURE_LISTs (see [`signature_list`]).
    pub fn secure_boot_dbs(&mut self, pk: &[u8], kek: &[u8], db: &[u8], dbx: &[u8]) -> &mut Self {
        self.variable(EFI_GLOBAL_VARIABLE, "PK", pk)
            .variable(EFI_GLOBAL_VARIABLE, "KEK", kek)
            .variable(EFI_IMAGE_SECURITY_DATABASE_GUID, "db", db)
            .variable(EFI_IMAGE_SECURITY_DATABASE_GUID, "dbx", dbx)
    }

    /// EV_SEPARATOR (value 0) in each of `pcrs`.
    pub fn separators(&mut self, pcrs: impl IntoIterator<Item = u8>) -> &mut Self {
        for pcr in pcrs {
            self.event(pcr, EV_SEPARATOR, &[0; 4]);
        }
        self
    }

    /// EV_EFI_BOOT_SERVICES_APPLICATION in PCR 4: `image` stands in for the PE image (its digests are the
    /// plain hashes of `image`, where firmware would use the Authenticode hash); `path` is its file path.
    pub fn boot_app(&mut self, image: &[u8], path: &str) -> &mut Self {
        self.event_measuring(4, EV_EFI_BOOT_SERVICES_APPLICATION, image, &image_load_event(path))
    }

    /// GRUB's kernel command line in PCR 8: data "kernel_cmdline: TEXT\0", digest H(TEXT).
    pub fn kernel_cmdline(&mut self, text: &str) -> &mut Self {
        let data = [b"kernel_cmdline: ", text.as_bytes(), b"\0"].concat();
        self.event_measuring(8, EV_IPL, text.as_bytes(), &data)
    }

    /// EV_EFI_ACTION "UEFI Debug Mode" in PCR 7.
    pub fn debug_mode(&mut self) -> &mut Self {
        self.event(7, EV_EFI_ACTION, UEFI_DEBUG_MODE)
    }

    /// The PCR extensions, in log order.
    pub fn extends(&self) -> &[Extend] {
        &self.extends
    }

    /// The binary log.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// PFP's UEFI_VARIABLE_DATA for `guid`/`name` holding `data`.
pub fn variable_data(guid: Guid, name: &str, data: &[u8]) -> Vec<u8> {
    let name: Vec<u16> = name.encode_utf16().collect();
    let mut out = guid.0.to_vec();
    out.extend_from_slice(&(name.len() as u64).to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend(name.iter().flat_map(|u| u.to_le_bytes()));
    out.extend_from_slice(data);
    out
}

/// One EFI_SIGNATURE_LIST (UEFI 2.9 §32.4.1) of `signature_type` with no header and the given entries
/// (all the same length), owned by `owner`.
pub fn signature_list(signature_type: Guid, owner: Guid, entries: &[&[u8]]) -> Vec<u8> {
    let size = 16 + entries.first().map_or(0, |e| e.len());
    let mut out = signature_type.0.to_vec();
    out.extend_from_slice(&((28 + size * entries.len()) as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(size as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&owner.0);
        out.extend_from_slice(e);
    }
    out
}

/// An EFI_CERT_SHA256 list of image hashes (a typical dbx).
pub fn sha256_list(owner: Guid, hashes: &[[u8; 32]]) -> Vec<u8> {
    let entries: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
    signature_list(EFI_CERT_SHA256_GUID, owner, &entries)
}

/// A UEFI_IMAGE_LOAD_EVENT (64-bit UINTN) whose device path is one media file path node and the end node.
pub fn image_load_event(path: &str) -> Vec<u8> {
    let name: Vec<u8> = path.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
    let mut device_path = vec![4, 4];
    device_path.extend_from_slice(&((4 + name.len()) as u16).to_le_bytes());
    device_path.extend_from_slice(&name);
    device_path.extend_from_slice(&[0x7F, 0xFF, 4, 0]);
    let mut out = Vec::new();
    out.extend_from_slice(&0x1000_0000u64.to_le_bytes()); // ImageLocationInMemory
    out.extend_from_slice(&0x10_0000u64.to_le_bytes()); // ImageLengthInMemory
    out.extend_from_slice(&0u64.to_le_bytes()); // ImageLinkTimeAddress
    out.extend_from_slice(&(device_path.len() as u64).to_le_bytes());
    out.extend_from_slice(&device_path);
    out
}
