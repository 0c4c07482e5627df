//! The client side of the agent's socket: [`AgentTpm`] is a [`Tpm`] whose operations the agent performs
//! (docs/design.md §14), so `token request`, `exec` and `enroll` work through it unchanged.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runtrust_attestation::{HashAlg, PcrSelection, PcrValues, Public};

use super::protocol::{parse_line, to_line, Answer, FailureKind, Request, Status, MAX_ANSWER_LINE};
use crate::tpm::{NonceQuote, Quote, Tpm, TpmError, TpmInfo};

/// How long a client waits for one answer: a rate-limited agent may hold a quote request for a while.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to the agent.
pub struct AgentTpm {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl AgentTpm {
    /// Connects to the agent at `socket`. An error here means "no agent": callers fall back to the TPM.
    pub fn connect(socket: &Path) -> std::io::Result<Self> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        let writer = stream.try_clone()?;
        Ok(Self { socket: socket.to_owned(), reader: BufReader::new(stream), writer })
    }

    fn error(&self, detail: impl Into<String>, unavailable: bool) -> TpmError {
        TpmError::Agent { socket: self.socket.clone(), detail: detail.into(), unavailable }
    }

    /// Sends one request and reads its answer; an error answer becomes a [`TpmError::Agent`].
    pub fn call(&mut self, request: &Request) -> Result<Answer, TpmError> {
        // A refused peer is answered before its request is read, and the socket closed: sending can then fail
        // with EPIPE while the refusal already waits to be read. Read it, so the refusal is what is reported.
        let sent = self.writer.write_all(&to_line(request));
        let mut line = Vec::new();
        let limit = MAX_ANSWER_LINE as u64 + 1;
        let read = (&mut self.reader).take(limit).read_until(b'\n', &mut line);
        let n = match (sent, read) {
            (_, Ok(n)) if n > 0 && line.last() == Some(&b'\n') => n,
            (Err(e), _) => return Err(self.error(format!("sending: {e}"), true)),
            (Ok(()), Err(e)) => return Err(self.error(format!("reading the answer: {e}"), true)),
            (Ok(()), Ok(n)) => n,
        };
        if n == 0 || line.pop() != Some(b'\n') {
            let detail = if line.len() >= MAX_ANSWER_LINE { "the answer is too long" } else { "closed mid-answer" };
            return Err(self.error(detail, true));
        }
        match parse_line::<Answer>(&line, MAX_ANSWER_LINE).map_err(|e| self.error(e, false))? {
            Answer::Error(f) => {
                let unavailable = matches!(f.kind, FailureKind::TpmUnavailable | FailureKind::ShuttingDown);
                let kind = serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(str::to_owned));
                Err(self.error(format!("{}: {}", kind.unwrap_or_default(), f.message), unavailable))
            }
            a => Ok(a),
        }
    }

    fn unexpected(&self, asked: &str) -> TpmError {
        self.error(format!("answered {asked} with something else"), false)
    }

    fn public(&mut self, request: Request, tpm2b: bool) -> Result<Public, TpmError> {
        match self.call(&request)? {
            Answer::Public(bytes) => {
                let parsed = if tpm2b { Public::from_tpm2b(&bytes) } else { Public::from_tpmt(&bytes) };
                parsed.map_err(|e| self.error(format!("a key it sent does not parse: {e}"), false))
            }
            _ => Err(self.unexpected("a key request")),
        }
    }

    /// The agent's counters (`runtrust agent status`).
    pub fn status(&mut self) -> Result<Status, TpmError> {
        match self.call(&Request::Status {})? {
            Answer::Status(s) => Ok(s),
            _ => Err(self.unexpected("status")),
        }
    }

    fn unsupported(&self, what: &str) -> TpmError {
        self.error(format!("{what} is not served by the agent; run it with the agent stopped or use tpm2-tools"), false)
    }
}

/// `runtrust agent status`: the counters of the agent at `socket`.
pub fn status(socket: &Path) -> Result<Status, TpmError> {
    let mut agent = AgentTpm::connect(socket).map_err(|e| TpmError::Agent {
        socket: socket.to_owned(),
        detail: format!("no agent answers: {e}"),
        unavailable: true,
    })?;
    agent.status()
}

impl Tpm for AgentTpm {
    fn info(&mut self) -> Result<TpmInfo, TpmError> {
        Err(self.unsupported("tpm info"))
    }

    fn pcr_read(&mut self, _selection: &PcrSelection) -> Result<PcrValues, TpmError> {
        Err(self.unsupported("reading PCRs alone"))
    }

    fn pcr_extend(&mut self, _bank: HashAlg, _index: u8, _digest: &[u8]) -> Result<(), TpmError> {
        Err(self.unsupported("extending PCRs"))
    }

    fn ek_public(&mut self) -> Result<Public, TpmError> {
        self.public(Request::EkPublic {}, false)
    }

    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TpmError> {
        match self.call(&Request::EkCertificate {})? {
            Answer::Certificate(c) => Ok(c),
            _ => Err(self.unexpected("the EK certificate request")),
        }
    }

    fn ek_intermediates(&mut self) -> Result<Vec<Vec<u8>>, TpmError> {
        match self.call(&Request::EkIntermediates {})? {
            Answer::Certificates(c) => Ok(c),
            _ => Err(self.unexpected("the EK intermediates request")),
        }
    }

    fn ak_public(&mut self) -> Result<Public, TpmError> {
        self.public(Request::AkPublic {}, true)
    }

    /// A single-nonce quote: the agent quotes this nonce alone only when no other request shares its
    /// window; a batched answer is refused here (use [`Tpm::quote_nonce`]).
    fn quote(&mut self, nonce: &[u8], selection: &PcrSelection) -> Result<Quote, TpmError> {
        let q = self.quote_nonce(nonce, selection)?;
        match q.batch {
            None => Ok(q.quote),
            Some(_) => {
                Err(self.error("the agent answered with a batch quote where one of this nonce alone was needed", false))
            }
        }
    }

    fn quote_nonce(&mut self, nonce: &[u8], selection: &PcrSelection) -> Result<NonceQuote, TpmError> {
        let request = Request::Quote { nonce: hex::encode(nonce), selection: selection.to_string() };
        let answer = match self.call(&request)? {
            Answer::Quote(q) => q,
            _ => return Err(self.unexpected("a quote request")),
        };
        let batch = answer
            .batch
            .as_ref()
            .map(|b| b.to_proof())
            .transpose()
            .map_err(|e| self.error(format!("its batch proof is malformed: {e}"), false))?;
        let quote = Quote { attest: answer.attest, signature: answer.signature, pcrs: answer.pcrs };
        Ok(NonceQuote { quote, batch })
    }

    fn activate_credential(&mut self, credential_blob: &[u8], encrypted_secret: &[u8]) -> Result<Vec<u8>, TpmError> {
        let request = Request::ActivateCredential {
            credential_blob: credential_blob.to_vec(),
            encrypted_secret: encrypted_secret.to_vec(),
        };
        match self.call(&request)? {
            Answer::Secret(s) => Ok(s),
            _ => Err(self.unexpected("the credential activation")),
        }
    }
}
