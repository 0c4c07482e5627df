//! `runtrust lineage CTI`: a token's ancestry, its descendants as a tree, and the executions under each.

use clap::Args;
use serde_json::Value;

use super::{print_json, CliResult, GlobalOpts};

#[derive(Args, Debug)]
#[command(
    after_help = "Status is one of: active, spent (single use, used), expired, revoked (with what was revoked and why)."
)]
pub struct LineageArgs {
    /// The token's cti (hex).
    cti: String,
}

pub fn run(a: LineageArgs, g: &GlobalOpts) -> CliResult {
    let client = g.client()?;
    let v: Value = client.get(&format!("/v1/lineage/{}", a.cti))?;
    if g.json {
        print_json(&v);
        return Ok(());
    }
    let ancestors = v["ancestors"].as_array().cloned().unwrap_or_default();
    if !ancestors.is_empty() {
        println!("ancestry (root first):");
        for (i, n) in ancestors.iter().enumerate() {
            println!("{}{}", "  ".repeat(i + 1), line(n));
        }
    }
    println!("token and descendants:");
    print_tree(&v["token"], 1);
    if v["truncated"].as_bool() == Some(true) {
        println!("(truncated: more descendants than shown)");
    }
    Ok(())
}

fn line(n: &Value) -> String {
    let s = |k: &str| n[k].as_str().unwrap_or("").to_owned();
    let mut out = format!("{} {} [{}] host {} depth {}", s("cti"), s("scope"), s("status"), s("host_id"), n["depth"]);
    if let Some(r) = n["revoked"].as_object() {
        let f = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        out.push_str(&format!(" — revoked via {} by {}: {}", f("via"), f("by"), f("reason")));
    }
    out
}

fn print_tree(n: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    println!("{pad}{}", line(n));
    for e in n["executions"].as_array().into_iter().flatten() {
        let end = match e["end"].as_object() {
            None => "running or not reported".to_owned(),
            Some(end) => {
                match (end.get("exit_code").and_then(Value::as_i64), end.get("signal").and_then(Value::as_i64)) {
                    (Some(c), _) => {
                        format!("exit {c} after {} ms", end.get("duration_ms").and_then(Value::as_u64).unwrap_or(0))
                    }
                    (None, Some(sig)) => format!("signal {sig}"),
                    _ => "ended".to_owned(),
                }
            }
        };
        println!(
            "{pad}  ▸ execution {} at {} by {} scope {} argv {}: {end}",
            e["id"].as_str().unwrap_or(""),
            e["started_at"],
            e["gateway"].as_str().unwrap_or(""),
            e["scope"].as_str().unwrap_or(""),
            e["argv_sha256"].as_str().unwrap_or("").get(..16).unwrap_or("")
        );
    }
    for c in n["children"].as_array().into_iter().flatten() {
        print_tree(c, depth + 1);
    }
}
