//! `runtrust principal …` and `runtrust hosts …` (through the service's API, with an admin credential).

use clap::Subcommand;

use super::args::RoleArg;
use super::service_cmd::done;
use super::{print_json, CliResult, GlobalOpts};
use crate::api::routes;
use crate::api::{CreatedPrincipal, HostView, NewPrincipal, PrincipalView};

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
    let HostsCommand::List = cmd;
    let client = g.client()?;
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
