//! Writes to stdout and stderr that never panic (the `println!` family is shadowed with these in cli/mod.rs).
//! A closed stdout (the reader went away: EPIPE) or stderr drops the rest of that stream's output; the command
//! itself goes on to its normal end, so errors stay values and destructors (TPM flushes) run.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write found its stream closed; later writes are skipped.
static CLOSED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

/// Which of stdout / stderr a writer is, for the closed flags.
pub(crate) trait Stream: Write {
    fn slot(&self) -> usize;
}

impl Stream for std::io::Stdout {
    fn slot(&self) -> usize {
        0
    }
}

impl Stream for std::io::Stderr {
    fn slot(&self) -> usize {
        1
    }
}

/// `text` and a newline, in one write.
pub(crate) fn line(w: &mut impl Stream, text: std::fmt::Arguments<'_>) {
    write(w, format!("{text}\n").as_bytes());
}

/// `text` as it is.
pub(crate) fn text(w: &mut impl Stream, text: std::fmt::Arguments<'_>) {
    write(w, text.to_string().as_bytes());
}

fn write(w: &mut impl Stream, bytes: &[u8]) {
    let closed = &CLOSED[w.slot()];
    if closed.load(Ordering::Relaxed) {
        return;
    }
    // Any failure (EPIPE above all) means nobody reads this stream any more: there is no better place to say so.
    if w.write_all(bytes).and_then(|()| w.flush()).is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

/// A Unix time for people: RFC 3339 in UTC (`2026-11-28T16:53:34Z`); `--json` keeps the integer.
pub(crate) fn when(t: u64) -> String {
    crate::token::rfc3339_unix(t)
}
