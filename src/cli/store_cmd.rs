//! `runtrust store migrate`: moves an embedded store to PostgreSQL (docs/design.md §15).

use std::path::PathBuf;

use super::{print_json, CliError, CliResult, GlobalOpts};
use crate::store::{is_postgres_url, StoreConfig, DEFAULT_POOL_SIZE};

#[derive(clap::Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy every record, counter and audit entry (with its index) from one store into an empty one, and
    /// check that the audit root is the same on both sides. Stop the service first.
    #[command(after_help = "Example:\n  runtrust store migrate --from sled:/var/lib/runtrust/store \
--to postgres://runtrust@127.0.0.1:5432/runtrust\n  then set store = \"postgres://…\" in config.toml")]
    Migrate {
        /// The source: sled:DIR (a data directory's store/) or a postgres:// URL.
        #[arg(long, value_name = "STORE")]
        from: String,
        /// The target, which must be empty: a postgres:// URL or sled:DIR.
        #[arg(long, value_name = "STORE")]
        to: String,
    },
}

/// `sled:DIR` or a PostgreSQL URL.
fn parse(setting: &str) -> Result<StoreConfig, CliError> {
    if is_postgres_url(setting) {
        return Ok(StoreConfig::Postgres { url: setting.to_owned(), pool_size: DEFAULT_POOL_SIZE.min(4) });
    }
    match setting.strip_prefix("sled:") {
        Some(dir) if !dir.is_empty() => Ok(StoreConfig::Sled { path: PathBuf::from(dir) }),
        _ => Err(CliError::Other(anyhow::anyhow!("{setting:?}: a store is sled:DIR or postgres://USER@HOST:PORT/DB"))),
    }
}

pub fn run(c: StoreCommand, g: &GlobalOpts) -> CliResult {
    match c {
        StoreCommand::Migrate { from, to } => {
            let (from, to) = (parse(&from)?, parse(&to)?);
            if let StoreConfig::Sled { path } = &from {
                if !path.join("conf").exists() && !path.join("db").exists() {
                    return Err(CliError::Other(anyhow::anyhow!("{} holds no sled store", path.display())));
                }
            }
            let source = crate::store::open(&from).map_err(anyhow::Error::from)?;
            let target = crate::store::open(&to).map_err(anyhow::Error::from)?;
            let report = crate::store::migrate(source.as_ref(), target.as_ref()).map_err(anyhow::Error::from)?;
            if g.json {
                print_json(&report);
                return Ok(());
            }
            println!("migrated {} to {}", from.describe(), to.describe());
            println!(
                "  principals {}, hosts {}, policies {}, tokens {}, revocations {}, executions {}",
                report.principals, report.hosts, report.policies, report.tokens, report.revocations, report.executions
            );
            println!("  audit: {} entries, root {} on both sides", report.audit_entries, report.root_after);
            Ok(())
        }
    }
}
