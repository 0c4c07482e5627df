//! `runtrust principal …` and `runtrust hosts …` (through the service's API, with an admin credential).

use clap::Subcommand;

use super::args::RoleArg;
use super::output::when;
use super::service_cmd::done;
use super::{print_json, CliError, CliResult, GlobalOpts};
use crate::api::routes;
use crate::api::{
    CreatedPrincipal, HostView, NewPrincipal, PrincipalView, RebaselineRequest, Rebaselined, RevocationView, SetTags,
    UnrevokeRequest,
};

#[derive(Subcommand, Debug)]
pub enum PrincipalCommand {
    /// Add a principal; prints its new credential alone on the last line of stdout (shown only once).
    Add {
        /// The principal's name: 1-64 of A-Z a-z 0-9 . _ - (shown in the audit log as the actor).
        name: String,
        /// What it may do: admin (everything), attester (enroll, request tokens), gateway (exec checks),
        /// auditor (read the audit log, hosts, lineage).
        #[arg(long, value_enum)]
        role: RoleArg,
        /// For an attester: a tag it confers on the host it enrolls (e.g. role=web); repeatable. The host gets
        /// exactly these, or the subset it asks for (docs/design.md §5).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// Write the credential to this file (mode 0600, refused if it exists) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// List principals and their roles.
    List,
    /// Give a principal a new credential; the old one stops working at once (admin; audited as
    /// principal.rotate). Prints the new credential alone on the last line, or writes it to --out (0600).
    Rotate {
        /// The principal's name.
        name: String,
        /// Write the new credential to this file (mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Remove a principal: its credential stops working at once.
    Remove {
        /// The principal's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum HostsCommand {
    /// List enrolled hosts.
    List,
    /// One host: tags, AK, enrollment, revocation state (admin, auditor).
    Show {
        /// The host id (sha256:…, from `hosts list` or `enroll`).
        host_id: String,
    },
    /// Replace a host's tags, which decide the policies that select it (admin; audited as host.tag).
    Tag {
        /// The host id (sha256:…).
        host_id: String,
        /// The host's tags from now on; repeatable (`--set role=db --set dc=2`).
        #[arg(long = "set", value_name = "T", required_unless_present = "clear")]
        set: Vec<String>,
        /// Remove every tag.
        #[arg(long, conflicts_with = "set")]
        clear: bool,
    },
    /// Lift a host's revocation: it may be issued tokens again; its earlier tokens stay revoked (admin;
    /// audited as host.unrevoke).
    Unrevoke {
        /// The host id (sha256:…).
        host_id: String,
        /// Why (kept in the revocation feed and the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Decommission a host (admin): it is revoked (its tokens stop at once), then its record, tags, clock
    /// baseline and its principal's binding are removed (audited as host.remove). Its tokens, executions and
    /// revocations stay for lineage and audit. The same TPM enrolls again only after `hosts unrevoke`.
    Remove {
        /// The host id (sha256:…).
        host_id: String,
        /// Why (kept in the revocation feed and the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Forget HOST's last accepted TPM clock, so that its next quote becomes the baseline (admin, audited).
    /// For a TPM whose counters legitimately went back (TPM2_Clear, a restored vTPM state): its quotes are
    /// clock_regressed until then. An unsafe clock (after power loss) is not waved through: see the hint.
    Rebaseline {
        /// The host id (sha256:…).
        host: String,
        /// Why (kept in the audit entry).
        #[arg(long)]
        reason: String,
    },
}

pub fn principal(cmd: PrincipalCommand, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    match cmd {
        PrincipalCommand::Add { name, role, tags, out } => {
            if let Some(path) = out.as_ref().filter(|p| p.exists()) {
                return Err(CliError::Usage(anyhow::anyhow!(
                    "--out {}: the file exists; a credential is never written over another",
                    path.display()
                )));
            }
            let created: CreatedPrincipal =
                client.post(routes::PRINCIPALS, &NewPrincipal { name, role: role.into(), tags })?;
            if let Some(path) = &out {
                crate::fsutil::write_private(path, format!("{}\n", created.credential).as_bytes()).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: {e} (the principal was added: `principal rotate` makes a new credential)",
                        path.display()
                    )
                })?;
            }
            if g.json {
                let mut v = serde_json::to_value(&created).map_err(anyhow::Error::from)?;
                if out.is_some() {
                    v["credential"] = serde_json::Value::Null;
                }
                print_json(&v);
            } else if let Some(path) = &out {
                println!(
                    "added principal {:?} with role {}; its credential is in {} (0600)",
                    created.name,
                    created.role.name(),
                    path.display()
                );
            } else {
                let confers = if created.tags.is_empty() {
                    String::new()
                } else {
                    format!(", conferring tags [{}]", created.tags.join(", "))
                };
                println!(
                    "added principal {:?} with role {}{confers}; its credential (save it to a file, mode 0600):",
                    created.name,
                    created.role.name()
                );
                println!("{}", created.credential);
            }
        }
        PrincipalCommand::List => {
            let all: Vec<PrincipalView> = client.get(routes::PRINCIPALS)?;
            if g.json {
                print_json(&serde_json::to_value(&all).map_err(anyhow::Error::from)?);
            } else {
                for p in all {
                    let tags = if p.tags.is_empty() { String::new() } else { format!("  tags=[{}]", p.tags.join(",")) };
                    println!("{:<24} {:<8}{tags}", p.name, p.role.name());
                }
            }
        }
        PrincipalCommand::Rotate { name, out } => {
            let rotated: CreatedPrincipal =
                client.post(&routes::path(routes::PRINCIPAL_ROTATE, &[&name]), &serde_json::json!({}))?;
            if let Some(path) = &out {
                crate::fsutil::write_private(path, format!("{}\n", rotated.credential).as_bytes())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
            if g.json {
                let mut v = serde_json::to_value(&rotated).map_err(anyhow::Error::from)?;
                if out.is_some() {
                    v["credential"] = serde_json::Value::Null;
                }
                print_json(&v);
            } else {
                match &out {
                    Some(path) => println!(
                        "rotated principal {:?}; its new credential is in {} (0600)",
                        rotated.name,
                        path.display()
                    ),
                    None => {
                        println!(
                            "rotated principal {:?}; its new credential (save it to a file, mode 0600):",
                            rotated.name
                        );
                        println!("{}", rotated.credential);
                    }
                }
            }
        }
        PrincipalCommand::Remove { name } => {
            client.delete(&routes::path(routes::PRINCIPAL, &[&name]))?;
            done(g, &format!("removed principal {name:?}"));
        }
    }
    Ok(())
}

pub fn hosts(cmd: HostsCommand, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    match cmd {
        HostsCommand::List => {
            let hosts: Vec<HostView> = client.get(routes::HOSTS)?;
            if g.json {
                print_json(&serde_json::to_value(&hosts).map_err(anyhow::Error::from)?);
            } else if hosts.is_empty() {
                println!("no enrolled hosts");
            } else {
                for h in hosts {
                    let revoked = if h.revoked { "  REVOKED" } else { "" };
                    println!("{}  tags=[{}]  ak={}{revoked}", h.host_id, h.tags.join(","), h.ak_name);
                }
            }
        }
        HostsCommand::Show { host_id } => {
            let h: HostView = client.get(&routes::path(routes::HOST, &[&host_id]))?;
            show(&h, g)?;
        }
        HostsCommand::Tag { host_id, set, clear } => {
            let tags = if clear { Vec::new() } else { set };
            let h: HostView = client.post(&routes::path(routes::HOST_TAGS, &[&host_id]), &SetTags { tags })?;
            if g.json {
                show(&h, g)?;
            } else {
                println!("host {} now has tags [{}]", h.host_id, h.tags.join(", "));
            }
        }
        HostsCommand::Rebaseline { host, reason } => {
            let path = routes::path(routes::HOST_REBASELINE, &[&host]);
            let r: Rebaselined = client.post(&path, &RebaselineRequest { reason })?;
            if g.json {
                print_json(&serde_json::to_value(&r).map_err(anyhow::Error::from)?);
            } else {
                println!(
                    "host {}: clock baseline reset (was clock {}, resetCount {}, restartCount {}); its next quote sets it",
                    r.host_id, r.previous_clock, r.previous_reset_count, r.previous_restart_count
                );
            }
        }
        HostsCommand::Remove { host_id, reason } => {
            let path = routes::path(routes::HOST_REMOVE, &[&host_id]);
            let h: HostView = client.post(&path, &UnrevokeRequest { reason })?;
            if g.json {
                print_json(&serde_json::to_value(&h).map_err(anyhow::Error::from)?);
            } else {
                println!(
                    "removed host {} (tags [{}]); it is revoked, so its tokens stop at once; to let this TPM enroll \
                     again: runtrust hosts unrevoke {} --reason R",
                    h.host_id,
                    h.tags.join(", "),
                    h.host_id
                );
            }
        }
        HostsCommand::Unrevoke { host_id, reason } => {
            let path = routes::path(routes::HOST_UNREVOKE, &[&host_id]);
            let r: RevocationView = client.post(&path, &UnrevokeRequest { reason })?;
            if g.json {
                print_json(&serde_json::to_value(&r).map_err(anyhow::Error::from)?);
            } else {
                let lifted = r.lifts.map_or_else(String::new, |s| format!(" {s}"));
                println!(
                    "lifted revocation{lifted} of host {} (seq {}, audit entry {}): it may be issued tokens again; \
                     its earlier tokens stay revoked",
                    r.target, r.seq, r.audit_index
                );
            }
        }
    }
    Ok(())
}

/// `hosts show`: the record and its revocation state.
fn show(h: &HostView, g: &GlobalOpts) -> CliResult {
    if g.json {
        print_json(&serde_json::to_value(h).map_err(anyhow::Error::from)?);
        return Ok(());
    }
    println!("host         {}", h.host_id);
    println!("tags         [{}]", h.tags.join(", "));
    println!("ak           {}", h.ak_name);
    println!("ek cert      {}", h.ek_certificate_sha256.as_deref().unwrap_or("(none: trusted explicitly)"));
    println!("enrolled     {} by {}; updated {}", when(h.enrolled_at), h.enrolled_by, when(h.updated_at));
    match &h.revocation {
        Some(r) => println!("revoked      yes: seq {} by {} at {}: {}", r.seq, r.by, when(r.time), r.reason),
        None => println!("revoked      no"),
    }
    if let Some(l) = &h.lifted {
        println!(
            "lifted       seq {} by {} at {}: {} (earlier tokens stay revoked)",
            l.seq,
            l.by,
            when(l.time),
            l.reason
        );
    }
    Ok(())
}
