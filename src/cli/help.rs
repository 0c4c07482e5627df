//! The command line as clap sees it, with help that teaches (docs/design.md §9): the global options are
//! listed once, in `runtrust --help`, and a subcommand's help names them in one line instead of repeating
//! them. Completions and man pages are generated from the same command.

use std::path::Path;

use anyhow::Context as _;
use clap::{Arg, Command, CommandFactory};

use super::Cli;

/// One line in every subcommand's help.
const GLOBALS_NOTE: &str =
    "Global options (--json, --server, --server-ca, --credential, --agent, --tcti, --state-dir, \
--ek-alg, --ak-alg) work here too; `runtrust --help` describes them.";

/// The whole command line.
pub fn command() -> Command {
    let mut cmd = Cli::command();
    let globals: Vec<Arg> = cmd.get_arguments().filter(|a| a.is_global_set()).cloned().collect();
    for a in &globals {
        cmd = cmd.mut_arg(a.get_id().clone(), |a| a.hide(true));
    }
    let section = globals_section(&globals);
    let after = cmd.get_after_help().map(|h| format!("{h}\n\n{section}")).unwrap_or(section);
    cmd.after_help(after).mut_subcommands(note_globals)
}

fn note_globals(cmd: Command) -> Command {
    let after = cmd.get_after_help().map(|h| format!("{h}\n\n{GLOBALS_NOTE}")).unwrap_or_else(|| GLOBALS_NOTE.into());
    let cmd = match cmd.get_after_long_help().map(|h| format!("{h}\n\n{GLOBALS_NOTE}")) {
        Some(long) => cmd.after_long_help(long),
        None => cmd,
    };
    cmd.after_help(after).mut_subcommands(note_globals)
}

/// "Global options (every command):" and one entry per option: flag, value, first help line, variable.
fn globals_section(globals: &[Arg]) -> String {
    let mut out = String::from("Global options (every command; flag > environment > client config > default):");
    for a in globals {
        let Some(long) = a.get_long() else { continue };
        let value = a.get_value_names().and_then(|v| v.first()).map(|v| format!(" <{v}>")).unwrap_or_else(|| {
            if a.get_action().takes_values() {
                " <VALUE>".into()
            } else {
                String::new()
            }
        });
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        let first = help.split(". ").next().unwrap_or_default().trim_end_matches('.');
        let env = a.get_env().map(|e| format!(" [env: {}]", e.to_string_lossy())).unwrap_or_default();
        out.push_str(&format!("\n  --{long}{value}\n      {first}{env}"));
    }
    out
}

/// Writes runtrust.1 and runtrust-SUB[-SUB].1 for every subcommand into `dir`; returns how many.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = command();
    cmd.build();
    write_pages(&cmd, "runtrust", dir)
}

fn write_pages(cmd: &Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let page = cmd.clone().name(name.to_owned()).bin_name(name.replace('-', " "));
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out).with_context(|| format!("rendering {name}(1)"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(path: &[&str]) -> String {
        let mut cmd = command();
        let mut args = vec!["runtrust"];
        args.extend_from_slice(path);
        args.push("--help");
        match cmd.try_get_matches_from_mut(args) {
            Err(e) => e.render().to_string(),
            Ok(_) => panic!("--help must print help"),
        }
    }

    #[test]
    fn global_options_are_listed_once() {
        let top = help(&[]);
        assert!(top.contains("Global options (every command") && top.contains("--credential <FILE>"), "{top}");
        let tail = help(&["audit", "tail"]);
        assert!(!tail.contains("--credential <FILE>"), "{tail}");
        assert!(tail.contains("Global options (--json"), "{tail}");
        assert!(tail.lines().count() <= 45, "audit tail --help is {} lines:\n{tail}", tail.lines().count());
    }

    #[test]
    fn man_pages_cover_every_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let n = write_man_pages(dir.path()).unwrap();
        assert!(n > 30, "{n} pages");
        let exec = std::fs::read_to_string(dir.path().join("runtrust-exec.1")).unwrap();
        assert!(exec.contains(".TH runtrust-exec") && exec.contains("audience"), "{exec}");
        assert!(dir.path().join("runtrust-audit-tail.1").exists());
    }

    #[test]
    fn every_argument_is_described() {
        fn walk(cmd: &Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for s in cmd.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut cmd = command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "runtrust", &mut missing);
        assert!(missing.is_empty(), "arguments without a description: {missing:#?}");
    }
}
