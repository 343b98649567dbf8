//! ARCHITECTURE.md's dependency rules, held against the real graph: the "Crate dependencies"
//! table is parsed from the document itself and compared with `cargo metadata`, so the doc and
//! the workspace cannot drift apart. Also the invariants the document states in prose: `model`
//! and `logic` have no async runtime, and `controllers` never reaches `apiserver` or `store`.
//! `--no-deps` metadata needs no build, so this is instant.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The heading (level 2) of ARCHITECTURE.md's dependency table.
const SECTION: &str = "Crate dependencies";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// Every workspace crate and the workspace crates among its normal (`[dependencies]`, kind
/// null) dependencies, with whether it depends on `tokio` directly.
struct Graph {
    deps: BTreeMap<String, BTreeSet<String>>,
    tokio: BTreeSet<String>,
}

fn graph() -> anyhow::Result<Graph> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .output()
        .with_context(|| format!("run {cargo} metadata"))?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("parse cargo metadata")?;
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .context("workspace_members")?
        .iter()
        .filter_map(|id| id.as_str())
        .collect();
    let packages: Vec<&serde_json::Value> = meta["packages"]
        .as_array()
        .context("packages")?
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
        .collect();
    let names: BTreeSet<String> = packages.iter().filter_map(|p| p["name"].as_str()).map(String::from).collect();
    let mut deps = BTreeMap::new();
    let mut tokio = BTreeSet::new();
    for p in packages {
        let name = p["name"].as_str().context("package name")?.to_string();
        let mut own = BTreeSet::new();
        for d in p["dependencies"].as_array().context("dependencies")? {
            // kind null is a normal dependency; "dev" and "build" are not rules.
            if !d["kind"].is_null() {
                continue;
            }
            // `name` is the package depended on (a rename is in `rename`).
            let dep = d["name"].as_str().context("dependency name")?;
            if dep == "tokio" {
                tokio.insert(name.clone());
            }
            if names.contains(dep) {
                own.insert(dep.to_string());
            }
        }
        deps.insert(name, own);
    }
    Ok(Graph { deps, tokio })
}

/// The "Crate dependencies" table: crate → the workspace crates it may depend on.
fn table() -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let path = workspace_root().join("ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let section = doc
        .split_once(&format!("\n## {SECTION}\n"))
        .with_context(|| format!("ARCHITECTURE.md has no \"{SECTION}\" section"))?
        .1;
    let rows = section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    let mut table = BTreeMap::new();
    for row in rows {
        let cells: Vec<&str> = row.trim().trim_matches('|').split('|').map(str::trim).collect();
        let [krate, allowed] = cells[..] else {
            bail!("ARCHITECTURE.md: a dependency row needs two cells: {row}");
        };
        if krate == "crate" || krate.starts_with("---") {
            continue; // header and separator
        }
        let krate = krate.trim_matches('`').to_string();
        let allowed: BTreeSet<String> = if allowed == "none" {
            BTreeSet::new()
        } else {
            allowed.split(',').map(|c| c.trim().trim_matches('`').to_string()).collect()
        };
        if table.insert(krate.clone(), allowed).is_some() {
            bail!("ARCHITECTURE.md's dependency table has two rows for {krate}");
        }
    }
    if table.is_empty() {
        bail!("ARCHITECTURE.md's \"{SECTION}\" section has no table rows");
    }
    Ok(table)
}

/// The workspace crates `krate` reaches through normal dependencies, itself excluded.
fn reaches(graph: &Graph, krate: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![krate.to_string()];
    while let Some(c) = todo.pop() {
        for d in graph.deps.get(&c).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn crate_dependencies_are_the_ones_architecture_md_states() -> anyhow::Result<()> {
    let graph = graph()?;
    let table = table()?;
    let mut problems = Vec::new();

    for (krate, actual) in &graph.deps {
        let Some(allowed) = table.get(krate) else {
            problems.push(format!("{krate} has no row in ARCHITECTURE.md's \"{SECTION}\" table"));
            continue;
        };
        for dep in actual.difference(allowed) {
            problems.push(format!("{krate} depends on {dep}, which ARCHITECTURE.md does not allow"));
        }
        // (A name that is no crate at all is reported below.)
        for dep in allowed.difference(actual).filter(|d| graph.deps.contains_key(*d)) {
            problems.push(format!(
                "ARCHITECTURE.md says {krate} depends on {dep}, but it does not (drop {dep} from its row)"
            ));
        }
    }
    for (krate, allowed) in &table {
        if !graph.deps.contains_key(krate) {
            problems.push(format!(
                "ARCHITECTURE.md's dependency table has a row for {krate}, which is not a workspace crate"
            ));
        }
        for dep in allowed.iter().filter(|d| !graph.deps.contains_key(*d)) {
            problems.push(format!("ARCHITECTURE.md lets {krate} depend on {dep}, which is not a workspace crate"));
        }
    }

    // The prose invariants, from the graph itself (not the table, which could be edited to
    // match): no async runtime in `model` or `logic`, nor in any workspace crate they reach;
    // `controllers` reaches neither `apiserver` nor `store`, not even through another crate.
    for pure in ["model", "logic"] {
        if !graph.deps.contains_key(pure) {
            problems.push(format!("{pure} is not a workspace crate any more; update this test and ARCHITECTURE.md"));
        }
        let mut crates = reaches(&graph, pure);
        crates.insert(pure.to_string());
        for c in crates.intersection(&graph.tokio) {
            let via = if c == pure { String::new() } else { format!(" (through {c})") };
            problems.push(format!("{pure} depends on tokio{via}, but ARCHITECTURE.md says it has no async runtime"));
        }
    }
    let from_controllers = reaches(&graph, "controllers");
    for forbidden in ["apiserver", "store"] {
        if from_controllers.contains(forbidden) {
            problems.push(format!(
                "controllers depends on {forbidden}, but ARCHITECTURE.md says controllers never depend on apiserver or store"
            ));
        }
    }

    if !problems.is_empty() {
        bail!("the crate graph and ARCHITECTURE.md disagree:\n  {}", problems.join("\n  "));
    }
    Ok(())
}
