//! Certificates the TPM keeps in NV: the EK certificate (TCG EK Credential Profile §2.2.1.5.2: RSA 2048 at
//! 0x01c00002, ECC P-256 at 0x01c0000a, ECC P-384 at 0x01c00016) and the EK CA chain some platforms keep next
//! to it. Intel PTT (11th-generation Core on) stores the intermediates of its EK certificate in the indices
//! 0x01c00100–0x01c001ff, each holding one or more DER certificates back to back, possibly padded.

use std::convert::TryFrom;

use tss_esapi::abstraction::nv::max_nv_buffer_size;
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{NvIndexHandle, NvIndexTpmHandle, ObjectHandle, TpmHandle};
use tss_esapi::interface_types::resource_handles::NvAuth;
use tss_esapi::structures::CapabilityData;

use super::tss::TssTpm;
use super::TpmError;

/// First and last NV index of the EK certificate chain (TCG EK Credential Profile for TPM Family 2.0, the
/// "EK Certificate Chain" NV index range).
pub const EK_CHAIN_NV_FIRST: u32 = 0x01c0_0100;
pub const EK_CHAIN_NV_LAST: u32 = 0x01c0_01ff;
/// TPM_HT_NV_INDEX handles listed per TPM2_GetCapability call.
const HANDLES_PER_CALL: u32 = 64;
/// An NV read chunk when the TPM does not say (TPM_PT_NV_BUFFER_MAX is at least 512 on every TPM seen).
const DEFAULT_NV_CHUNK: usize = 512;

/// The DER element at the start of `nv` (EK certificate NV indices may be padded past the certificate).
pub(crate) fn der_prefix(nv: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = nv.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (len, header) = match first {
        n if n < 0x80 => (usize::from(n), 2),
        0x81..=0x83 => {
            let k = usize::from(first & 0x7f);
            let bytes = rest.get(..k)?;
            (bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)), 2 + k)
        }
        _ => return None,
    };
    nv.get(..header.checked_add(len)?)
}

/// The DER SEQUENCEs stored back to back in `nv`, and whether anything but padding (0x00 or 0xff bytes)
/// follows the last one.
pub(crate) fn split_der(nv: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut out = Vec::new();
    let mut rest = nv;
    while !rest.iter().all(|&b| b == 0x00 || b == 0xff) {
        match der_prefix(rest) {
            Some(element) => {
                out.push(element);
                rest = &rest[element.len()..];
            }
            None => return (out, true),
        }
    }
    (out, false)
}

impl TssTpm {
    /// The handles in `first..=last` (one handle type) that exist (TPM2_GetCapability, TPM_CAP_HANDLES).
    pub(super) fn handles_in(&mut self, first: u32, last: u32) -> Result<Vec<u32>, TpmError> {
        let mut found = Vec::new();
        let mut next = first;
        loop {
            let (data, more) = self.run("TPM2_GetCapability (handles)", |c| {
                c.execute_without_session(|c| c.get_capability(CapabilityType::Handles, next, HANDLES_PER_CALL))
            })?;
            let CapabilityData::Handles(list) = data else {
                return Err(TpmError::Unexpected { what: "TPM2_GetCapability", detail: "not a handle list".into() });
            };
            let handles: Vec<u32> = list.iter().map(|h| u32::from(*h)).collect();
            found.extend(handles.iter().copied().filter(|h| (first..=last).contains(h)));
            match handles.last() {
                Some(&h) if more && h < last => next = h + 1,
                _ => return Ok(found),
            }
        }
    }

    pub(super) fn nv_index_defined(&mut self, index: u32) -> Result<bool, TpmError> {
        Ok(self.handles_in(index, index)?.contains(&index))
    }

    /// The whole content of NV index `index`, read with the authorization its attributes allow without a
    /// password: the index's own (TPMA_NV_AUTHREAD, empty authValue) or the owner's (TPMA_NV_OWNERREAD).
    pub(super) fn nv_read_all(&mut self, index: u32, what: &'static str) -> Result<Vec<u8>, TpmError> {
        let tpm_handle = NvIndexTpmHandle::new(index).map_err(|source| TpmError::Command { command: what, source })?;
        let mut object =
            self.run(what, |c| c.execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::NvIndex(tpm_handle))))?;
        let result = self.nv_read_object(NvIndexHandle::from(object), what);
        if let Err(e) = self.ctx.tr_close(&mut object) {
            tracing::debug!("closing the ESYS handle of NV index {index:#010x}: {e}");
        }
        result
    }

    fn nv_read_object(&mut self, nv: NvIndexHandle, what: &'static str) -> Result<Vec<u8>, TpmError> {
        let (public, _) = self.run(what, |c| c.execute_without_session(|c| c.nv_read_public(nv)))?;
        let attributes = public.attributes();
        let auth = if attributes.auth_read() {
            NvAuth::NvIndex(nv)
        } else if attributes.owner_read() {
            NvAuth::Owner
        } else {
            return Err(TpmError::Unexpected {
                what,
                detail: "the NV index can be read neither with its own authorization nor the owner's".into(),
            });
        };
        let size = public.data_size();
        let chunk = self.run("TPM2_GetCapability (TPM_PT_NV_BUFFER_MAX)", max_nv_buffer_size).unwrap_or(0);
        let chunk = if chunk == 0 { DEFAULT_NV_CHUNK } else { chunk };
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            let len = (size - data.len()).min(chunk);
            let (len, offset) = (
                u16::try_from(len).map_err(|e| TpmError::Unexpected { what, detail: e.to_string() })?,
                u16::try_from(data.len()).map_err(|e| TpmError::Unexpected { what, detail: e.to_string() })?,
            );
            let part = self.run(what, |c| c.execute_with_nullauth_session(|c| c.nv_read(auth, nv, len, offset)))?;
            if part.value().is_empty() {
                return Err(TpmError::Unexpected {
                    what,
                    detail: format!("TPM2_NV_Read returned nothing at {offset}"),
                });
            }
            data.extend_from_slice(part.value());
        }
        Ok(data)
    }

    /// The certificates of the EK chain indices ([`EK_CHAIN_NV_FIRST`]..=[`EK_CHAIN_NV_LAST`]), in index order,
    /// each once. Absent indices are the rule; an index that cannot be read, or that holds something that is not
    /// a certificate, is skipped with a warning (the service names what is missing if the path then fails).
    pub(super) fn read_ek_chain(&mut self) -> Result<Vec<Vec<u8>>, TpmError> {
        let mut certs: Vec<Vec<u8>> = Vec::new();
        for index in self.handles_in(EK_CHAIN_NV_FIRST, EK_CHAIN_NV_LAST)? {
            let data = match self.nv_read_all(index, "TPM2_NV_Read (EK chain)") {
                Ok(d) => d,
                Err(e) if e.is_unavailable() => return Err(e),
                Err(e) => {
                    tracing::warn!("EK chain NV index {index:#010x} skipped: {e}");
                    continue;
                }
            };
            let (elements, trailing) = split_der(&data);
            if trailing {
                tracing::warn!("EK chain NV index {index:#010x}: bytes after its certificates are not DER; ignored");
            }
            for der in elements {
                // The service's strict certificate parser, so that one unusable entry cannot spoil enrollment.
                if let Err(e) = runtrust_attestation::ek::TrustAnchors::load_der_certs(vec![der.to_vec()]) {
                    tracing::warn!(
                        "EK chain NV index {index:#010x}: an entry is not a certificate runtrust reads: {e}"
                    );
                    continue;
                }
                if !certs.iter().any(|c| c == der) {
                    certs.push(der.to_vec());
                }
            }
        }
        Ok(certs)
    }

    /// Closes an ESYS handle that cannot be flushed (NV indices, persistent objects).
    pub(super) fn close(&mut self, handle: ObjectHandle) {
        let mut h = handle;
        if let Err(e) = self.ctx.tr_close(&mut h) {
            tracing::debug!("closing an ESYS handle: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{der_prefix, split_der};

    #[test]
    fn der_prefix_strips_nv_padding() {
        let mut nv = vec![0x30, 0x82, 0x00, 0x03, 1, 2, 3];
        nv.extend_from_slice(&[0xff; 20]);
        assert_eq!(der_prefix(&nv), Some(&nv[..7]));
        assert_eq!(der_prefix(&[0x30, 0x02, 1, 2, 0, 0]), Some(&[0x30, 0x02, 1, 2][..]));
        assert_eq!(der_prefix(&[0x30, 0x82, 0x01]), None, "truncated length");
        assert_eq!(der_prefix(&[0x30, 0x05, 1]), None, "shorter than its length");
        assert_eq!(der_prefix(&[0x04, 0x01, 1]), None, "not a SEQUENCE");
        assert_eq!(der_prefix(&[0x30, 0x84, 0, 0, 0, 1, 0]), None, "absurd length form");
    }

    #[test]
    fn split_der_reads_concatenated_certificates_and_padding() {
        let a = [0x30, 0x02, 1, 2];
        let b = [0x30, 0x81, 0x01, 9];
        let mut nv = [&a[..], &b[..], &[0xff; 7]].concat();
        assert_eq!(split_der(&nv), (vec![&a[..], &b[..]], false));
        nv.truncate(8);
        assert_eq!(split_der(&nv), (vec![&a[..], &b[..]], false), "no padding");
        assert_eq!(split_der(&[0u8; 16]), (vec![], false), "an empty (zeroed) index");
        assert_eq!(split_der(&[]), (vec![], false));
        let junk = [&a[..], b"junk"].concat();
        assert_eq!(split_der(&junk), (vec![&a[..]], true), "junk after the certificates");
        assert_eq!(split_der(&[0x30, 0x05, 1]), (vec![], true), "a truncated certificate");
    }
}
