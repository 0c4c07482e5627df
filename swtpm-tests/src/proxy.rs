//! A slow TPM: a TCP proxy between a TSS client (the `swtpm` TCTI) and swtpm's server port that makes chosen
//! commands take as long as they take on a discrete chip, counts every command by its code, and can answer a
//! command with a response code of its choosing (fault injection: TPM_RC_RETRY and friends).
//!
//! The `swtpm` TCTI speaks raw TPM 2.0 commands on the server port and reaches swtpm's control channel at
//! port + 1, so the proxy listens on a port pair too: commands on P, the control channel passed through on
//! P + 1. Each command is parsed from its header (TPM 2.0 Part 1 §18.2: tag u16, commandSize u32, commandCode
//! u32, big-endian); its response likewise (tag u16, responseSize u32, responseCode u32). Like a real TPM, the
//! proxy runs one command at a time: every connection waits for the one "chip", and a delay holds it.
//!
//! Used by the swtpm tests ([`crate::SwTpm::slow`]) and by `scripts/bench-slow-tpm.sh` through the `slow-tpm`
//! binary of this crate.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// TPM_CC values (TPM 2.0 Part 2 §6.5.2) of the commands runtrust's tests look at.
pub mod cc {
    pub const EVICT_CONTROL: u32 = 0x0000_0120;
    pub const CREATE_PRIMARY: u32 = 0x0000_0131;
    pub const ACTIVATE_CREDENTIAL: u32 = 0x0000_0147;
    pub const NV_READ: u32 = 0x0000_014E;
    pub const CREATE: u32 = 0x0000_0153;
    pub const LOAD: u32 = 0x0000_0157;
    pub const QUOTE: u32 = 0x0000_0158;
    pub const SIGN: u32 = 0x0000_015D;
    pub const FLUSH_CONTEXT: u32 = 0x0000_0165;
    pub const NV_READ_PUBLIC: u32 = 0x0000_0169;
    pub const READ_PUBLIC: u32 = 0x0000_0173;
    pub const GET_CAPABILITY: u32 = 0x0000_017A;
    pub const PCR_READ: u32 = 0x0000_017E;

    /// A command code from its Part 2 name without `TPM_CC_` (CreatePrimary, Quote, Sign, …) or as hex.
    pub fn parse(s: &str) -> Option<u32> {
        let named = [
            ("EvictControl", EVICT_CONTROL),
            ("CreatePrimary", CREATE_PRIMARY),
            ("ActivateCredential", ACTIVATE_CREDENTIAL),
            ("NV_Read", NV_READ),
            ("Create", CREATE),
            ("Load", LOAD),
            ("Quote", QUOTE),
            ("Sign", SIGN),
            ("FlushContext", FLUSH_CONTEXT),
            ("NV_ReadPublic", NV_READ_PUBLIC),
            ("ReadPublic", READ_PUBLIC),
            ("GetCapability", GET_CAPABILITY),
            ("PCR_Read", PCR_READ),
        ];
        if let Some((_, code)) = named.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Some(*code);
        }
        let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
        u32::from_str_radix(hex, 16).ok()
    }
}

/// TPM_RC warning codes (TPM 2.0 Part 2 §6.6.3, format zero, TPM_RC_WARN = 0x900) to inject.
pub mod rc {
    pub const YIELDED: u32 = 0x0000_0908;
    pub const TESTING: u32 = 0x0000_090A;
    pub const RETRY: u32 = 0x0000_0922;
}

/// TPM_ST_NO_SESSIONS (Part 2 §6.9): the tag of a response without sessions, which every error response has.
const TPM_ST_NO_SESSIONS: u16 = 0x8001;
/// Header of a command or response: tag u16, size u32, code u32.
const HEADER_LEN: usize = 10;
/// Larger than any TPM command or response (TPM_PT_MAX_COMMAND_SIZE is 4 KiB on most TPMs).
const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Default)]
struct Rules {
    delays: HashMap<u32, Duration>,
    /// Command code → (response code, how many more commands get it).
    faults: HashMap<u32, (u32, u32)>,
    counts: BTreeMap<u32, u64>,
    /// (command code, response code) of the first [`MAX_LOG`] commands.
    log: Vec<(u32, u32)>,
}

/// How many (command, response) pairs the proxy remembers.
const MAX_LOG: usize = 100_000;

struct Shared {
    rules: Mutex<Rules>,
    /// The chip: one command at a time, across every connection.
    chip: Mutex<()>,
    stop: AtomicBool,
    /// Called after each command with the counts so far (the binary writes them to a file).
    on_command: Option<OnCommand>,
}

/// A running proxy; stopped when dropped.
/// Called with the command counts after each command (tests wait on it).
type OnCommand = Box<dyn Fn(&BTreeMap<u32, u64>) + Send + Sync>;

pub struct TpmProxy {
    shared: Arc<Shared>,
    port: u16,
    threads: Vec<JoinHandle<()>>,
}

impl TpmProxy {
    /// A proxy in front of the swtpm whose server port is `upstream` (control channel at `upstream + 1`), with
    /// `delays` (command code, extra time) applied before each such command reaches swtpm.
    pub fn start(upstream: u16, delays: &[(u32, Duration)]) -> io::Result<TpmProxy> {
        Self::start_with(upstream, delays, None)
    }

    /// As [`TpmProxy::start`], calling `on_command` with the counts after every command.
    pub fn start_with(
        upstream: u16,
        delays: &[(u32, Duration)],
        on_command: Option<OnCommand>,
    ) -> io::Result<TpmProxy> {
        let rules = Rules { delays: delays.iter().copied().collect(), ..Rules::default() };
        let shared = Arc::new(Shared {
            rules: Mutex::new(rules),
            chip: Mutex::new(()),
            stop: AtomicBool::new(false),
            on_command,
        });
        let (data, ctrl) = listen_pair()?;
        let port = data.local_addr()?.port();
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(std::thread::spawn(move || {
            accept_loop(data, s, move |client, s| serve_commands(client, upstream, s))
        }));
        let s = shared.clone();
        threads.push(std::thread::spawn(move || {
            accept_loop(ctrl, s, move |client, _| pass_through(client, upstream + 1))
        }));
        Ok(TpmProxy { shared, port, threads })
    }

    /// The TCTI that reaches swtpm through this proxy.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The command port (the control channel is at port + 1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets (or, with zero, removes) the delay of command `code`.
    pub fn set_delay(&self, code: u32, delay: Duration) {
        let mut r = self.rules();
        if delay.is_zero() {
            r.delays.remove(&code);
        } else {
            r.delays.insert(code, delay);
        }
    }

    /// Answers the next `times` commands `code` with `response_code`, without passing them to swtpm.
    pub fn inject(&self, code: u32, response_code: u32, times: u32) {
        self.rules().faults.insert(code, (response_code, times));
    }

    /// How many commands `code` reached the proxy (injected answers included).
    pub fn count(&self, code: u32) -> u64 {
        self.rules().counts.get(&code).copied().unwrap_or(0)
    }

    /// How many commands `code` swtpm answered with TPM_RC_SUCCESS. (swtpm itself sometimes answers
    /// TPM_RC_RETRY, e.g. to the first command that uses a freshly loaded AK, and ESAPI resubmits: `count`
    /// sees both, this only the one that ran.)
    pub fn succeeded(&self, code: u32) -> u64 {
        self.rules().log.iter().filter(|&&(c, rc)| c == code && rc == 0).count() as u64
    }

    /// Every command code seen, with its count.
    pub fn counts(&self) -> BTreeMap<u32, u64> {
        self.rules().counts.clone()
    }

    /// Forgets the counts and the log.
    pub fn reset_counts(&self) {
        let mut r = self.rules();
        r.counts.clear();
        r.log.clear();
    }

    /// Each command seen and the response code it got, in order (TPM_CC, TPM_RC).
    pub fn log(&self) -> Vec<(u32, u32)> {
        self.rules().log.clone()
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.shared.rules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for TpmProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake both accept loops.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = TcpStream::connect(("127.0.0.1", self.port + 1));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Listeners on a free loopback port pair P, P + 1.
fn listen_pair() -> io::Result<(TcpListener, TcpListener)> {
    for _ in 0..50 {
        let data = TcpListener::bind("127.0.0.1:0")?;
        let Some(next) = data.local_addr()?.port().checked_add(1) else { continue };
        if let Ok(ctrl) = TcpListener::bind(("127.0.0.1", next)) {
            return Ok((data, ctrl));
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "no free loopback port pair for the TPM proxy"))
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    serve: impl Fn(TcpStream, &Shared) -> io::Result<()> + Send + Sync + 'static,
) {
    let serve = Arc::new(serve);
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let (s, f) = (shared.clone(), serve.clone());
        // Connection threads end when either side closes; they are not joined.
        std::thread::spawn(move || {
            let _ = f(conn, &s);
        });
    }
}

/// Reads one command or response: header, then the rest of its size.
fn read_message(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; HEADER_LEN];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if !(HEADER_LEN..=MAX_MESSAGE).contains(&size) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("TPM message size {size}")));
    }
    let mut msg = header.to_vec();
    msg.resize(size, 0);
    r.read_exact(&mut msg[HEADER_LEN..])?;
    Ok(Some(msg))
}

fn serve_commands(mut client: TcpStream, upstream: u16, shared: &Shared) -> io::Result<()> {
    let mut tpm: Option<TcpStream> = None;
    while let Some(command) = read_message(&mut client)? {
        let code = u32::from_be_bytes([command[6], command[7], command[8], command[9]]);
        let _chip = shared.chip.lock().unwrap_or_else(|p| p.into_inner());
        let (delay, fault, counts) = {
            let mut r = shared.rules.lock().unwrap_or_else(|p| p.into_inner());
            *r.counts.entry(code).or_default() += 1;
            let fault = match r.faults.get_mut(&code) {
                Some((rc, left)) if *left > 0 => {
                    *left -= 1;
                    Some(*rc)
                }
                _ => None,
            };
            (r.delays.get(&code).copied(), fault, shared.on_command.as_ref().map(|_| r.counts.clone()))
        };
        if let (Some(f), Some(c)) = (&shared.on_command, &counts) {
            f(c);
        }
        let response = match fault {
            Some(rc) => {
                let mut r = TPM_ST_NO_SESSIONS.to_be_bytes().to_vec();
                r.extend_from_slice(&(HEADER_LEN as u32).to_be_bytes());
                r.extend_from_slice(&rc.to_be_bytes());
                r
            }
            None => {
                if let Some(d) = delay {
                    std::thread::sleep(d);
                }
                let conn = match &mut tpm {
                    Some(c) => c,
                    None => tpm.insert(TcpStream::connect(("127.0.0.1", upstream))?),
                };
                conn.write_all(&command)?;
                read_message(conn)?
                    .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "swtpm closed the connection"))?
            }
        };
        let rc = response.get(6..10).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        {
            let mut r = shared.rules.lock().unwrap_or_else(|p| p.into_inner());
            if r.log.len() < MAX_LOG {
                r.log.push((code, rc));
            }
        }
        client.write_all(&response)?;
    }
    if let Some(t) = tpm {
        let _ = t.shutdown(Shutdown::Both);
    }
    Ok(())
}

/// The control channel, byte for byte both ways.
fn pass_through(client: TcpStream, upstream: u16) -> io::Result<()> {
    let server = TcpStream::connect(("127.0.0.1", upstream))?;
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let _ = io::copy(&mut s_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cc;

    #[test]
    fn command_names_and_hex() {
        assert_eq!(cc::parse("CreatePrimary"), Some(0x131));
        assert_eq!(cc::parse("quote"), Some(0x158));
        assert_eq!(cc::parse("Sign"), Some(0x15D));
        assert_eq!(cc::parse("0x17a"), Some(cc::GET_CAPABILITY));
        assert_eq!(cc::parse("Frobnicate"), None);
        assert_eq!(cc::parse("0xzz"), None);
    }
}
