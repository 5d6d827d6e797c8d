//! Daemon settings: flags, then the `--config` TOML file, then defaults.
//!
//! One mechanism for every daemon: the file's settings are turned into
//! flags placed before the command line's own and parsed by the same clap
//! definitions. The command line wins (a repeated flag overrides the
//! earlier one), the file wins over the defaults (which live in the flag
//! definitions, so `--help` shows them), a file key that is not a flag of
//! that daemon is an error naming it, and a value is checked exactly as
//! the flag's would be.

use anyhow::{bail, Context};
use std::ffi::OsString;

/// Expands `--config FILE` in a daemon's command line (`argv[1]` is the
/// subcommand); other command lines are returned as they are.
pub fn expand_config(cmd: &clap::Command, argv: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let Some(sub) = argv
        .get(1)
        .and_then(|s| s.to_str())
        .and_then(|s| cmd.find_subcommand(s))
    else {
        return Ok(argv);
    };
    if !sub.get_arguments().any(|a| a.get_long() == Some("config")) {
        return Ok(argv);
    }
    let Some(path) = config_path(&argv[2..]) else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {path}"))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        anyhow::anyhow!("config file {path} is not valid TOML: {}", e.message())
    })?;
    let mut out = argv[..2].to_vec();
    for (key, value) in &table {
        out.extend(flag_tokens(sub, &path, key, value)?);
    }
    out.extend(argv[2..].iter().cloned());
    Ok(out)
}

/// The `--config` value on a command line, if any (stops at `--`).
fn config_path(args: &[OsString]) -> Option<String> {
    let mut it = args.iter().filter_map(|a| a.to_str());
    while let Some(a) = it.next() {
        if a == "--" {
            return None;
        }
        if a == "--config" {
            return it.next().map(str::to_string);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(v.to_string());
        }
    }
    None
}

/// The flags one file setting stands for.
fn flag_tokens(
    sub: &clap::Command,
    path: &str,
    key: &str,
    value: &toml::Value,
) -> anyhow::Result<Vec<OsString>> {
    let long = key.replace('_', "-");
    let arg = sub
        .get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()) && long != "config");
    let Some(arg) = arg else {
        bail!(
            "unknown config key `{key}` in {path} (`tdfs {} --help` lists the settings)",
            sub.get_name()
        );
    };
    let switch = !arg.get_action().takes_values();
    let text = match value {
        toml::Value::Boolean(b) if switch => {
            return Ok(if *b {
                vec![format!("--{long}").into()]
            } else {
                vec![]
            });
        }
        _ if switch => bail!("config key `{key}` in {path} must be true or false"),
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                _ => bail!("config key `{key}` in {path}: list items must be strings or numbers"),
            })
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(","),
        _ => bail!("config key `{key}` in {path} must be a string, number, boolean or list"),
    };
    Ok(vec![format!("--{long}={text}").into()])
}

/// Parses sizes like `134217728`, `64m`, `64MiB`, `1g`.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = t[digits.len()..].trim();
    let n: u64 = digits.parse().with_context(|| format!("bad size {s:?}"))?;
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => bail!("bad size unit in {s:?}"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} is too large"))
}
