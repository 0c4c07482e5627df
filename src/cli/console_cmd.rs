//! `runtrust console`: a one-time sign-in link to the web console (docs/design.md §17).

use clap::Args;

use crate::api::{routes, ConsoleLinkView};

use super::output::when;
use super::{print_json, CliResult, GlobalOpts};

#[derive(Args, Debug)]
#[command(after_help = "The link signs one browser in once: opening it shows a Sign in button, which spends the \
link and sets a session cookie (HttpOnly, Secure, SameSite=Strict) for 30 minutes. An unused link lapses after \
5 minutes; a used or lapsed link is refused. The console is read-only: hosts, tokens and their lineage, \
executions, revocations and the audit timeline.\n\nExample:\n  runtrust --credential admin.cred console\n\n\
Treat the link like the credential it came from until it is used: it is printed, never logged.")]
pub struct ConsoleArgs {}

pub fn run(_: ConsoleArgs, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    let link: ConsoleLinkView = client.post(routes::CONSOLE_LINKS, &serde_json::json!({}))?;
    let url = format!("{}{}", client.base(), link.path);
    if g.json {
        print_json(&serde_json::json!({ "url": url, "principal": link.principal, "expires_at": link.expires_at }));
        return Ok(());
    }
    println!("{url}");
    eprintln!(
        "one-time sign-in link for {} to the web console; open it before {} (it works once)",
        link.principal,
        when(link.expires_at)
    );
    Ok(())
}
