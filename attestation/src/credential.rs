//! Software TPM2_MakeCredential (in progress).
