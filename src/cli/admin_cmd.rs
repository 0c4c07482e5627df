//! `runtrust principal …` and `runtrust hosts …` (through the service's API, with an admin credential).

use clap::Subcommand;

use super::args::RoleArg;
use super::service_cmd::done;
use super::{print_json, CliResult, GlobalOpts};
use crate::api::routes;
use crate::api::{CreatedPrincipal, HostView, NewPrincipal, PrincipalView, RebaselineRequest, Rebaselined};

#[derive(Subcommand, Debug)]
pub enum PrincipalCommand {
    /// Add a principal; prints its new credential alone on the last line of stdout (shown only once).
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// List principals and their roles.
    List,
    /// Remove a principal: its credential stops working at once.
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
pub enum HostsCommand {
    /// List enrolled hosts.
    List,
    /// Forget HOST's last accepted TPM clock, so that its next quote becomes the baseline (admin, audited).
    /// For a TPM whose counters legitimately went back (TPM2_Clear, a restored vTPM state): its quotes are
    /// clock_regressed until then. An unsafe clock (after power loss) is not waved through: see the hint.
    Rebaseline {
        host: String,
        /// Why (kept in the audit entry).
        #[arg(long)]
        reason: String,
    },
}

pub fn principal(cmd: PrincipalCommand, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    match cmd {
        PrincipalCommand::Add { name, role } => {
            let created: CreatedPrincipal =
                client.post(routes::PRINCIPALS, &NewPrincipal { name, role: role.into() })?;
            if g.json {
                print_json(&serde_json::to_value(&created).map_err(anyhow::Error::from)?);
            } else {
                println!(
                    "added principal {:?} with role {}; its credential (save it to a file, mode 0600):",
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
                    println!("{:<24} {}", p.name, p.role.name());
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
    if let HostsCommand::Rebaseline { host, reason } = cmd {
        let r: Rebaselined =
            client.post(&routes::path(routes::HOST_REBASELINE, &[&host]), &RebaselineRequest { reason })?;
        if g.json {
            print_json(&serde_json::to_value(&r).map_err(anyhow::Error::from)?);
        } else {
            println!(
                "host {}: clock baseline reset (was clock {}, resetCount {}, restartCount {}); its next quote sets it",
                r.host_id, r.previous_clock, r.previous_reset_count, r.previous_restart_count
            );
        }
        return Ok(());
    }
    let hosts: Vec<HostView> = client.get(routes::HOSTS)?;
    if g.json {
        print_json(&serde_json::to_value(&hosts).map_err(anyhow::Error::from)?);
    } else if hosts.is_empty() {
        println!("no enrolled hosts");
    } else {
        for h in hosts {
            println!("{}  tags=[{}]  ak={}", h.host_id, h.tags.join(","), h.ak_name);
        }
    }
    Ok(())
}
