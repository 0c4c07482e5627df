//! `slow-tpm`: the slow-TPM proxy (swtpm_tests::proxy) as a process, for benchmarks and trying by hand.
//!
//!     slow-tpm --upstream PORT [--delay CreatePrimary=3000]... [--counts FILE]
//!
//! PORT is swtpm's server port (its control channel at PORT + 1). Each --delay names a command (a TPM 2.0
//! Part 2 name without TPM_CC_, e.g. CreatePrimary, Quote, Sign, or hex like 0x131) and milliseconds. Prints
//! the TCTI to use on its first line of stdout, then runs until killed; with --counts, FILE is rewritten after
//! every command with one `CODE COUNT` line per command code (code as 0x hex).

// A test tool: a bad argument ends it with a message (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use swtpm_tests::proxy::{cc, TpmProxy};

fn usage(msg: &str) -> ! {
    eprintln!("slow-tpm: {msg}\nusage: slow-tpm --upstream PORT [--delay COMMAND=MS]... [--counts FILE]");
    std::process::exit(2);
}

fn main() {
    let mut upstream = None;
    let mut delays = Vec::new();
    let mut counts: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--upstream" => {
                upstream = Some(value().parse::<u16>().unwrap_or_else(|e| usage(&format!("--upstream: {e}"))))
            }
            "--delay" => {
                let v = value();
                let (name, ms) = v.split_once('=').unwrap_or_else(|| usage("--delay takes COMMAND=MS"));
                let code = cc::parse(name).unwrap_or_else(|| usage(&format!("unknown command {name:?}")));
                let ms: u64 = ms.parse().unwrap_or_else(|e| usage(&format!("--delay {v}: {e}")));
                delays.push((code, Duration::from_millis(ms)));
            }
            "--counts" => counts = Some(PathBuf::from(value())),
            "-h" | "--help" => usage("a slow TPM in front of swtpm"),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let upstream = upstream.unwrap_or_else(|| usage("--upstream PORT is required"));
    let on_command = counts.map(|path| {
        Box::new(move |c: &std::collections::BTreeMap<u32, u64>| {
            let text: String = c.iter().map(|(code, n)| format!("{code:#x} {n}\n")).collect();
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }) as Box<dyn Fn(&std::collections::BTreeMap<u32, u64>) + Send + Sync>
    });
    let proxy = TpmProxy::start_with(upstream, &delays, on_command).unwrap_or_else(|e| usage(&e.to_string()));
    println!("{}", proxy.tcti());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
