//! Daemon settings from flags, then a TOML file, then defaults.

use anyhow::{bail, Context};
use std::path::Path;

/// A parsed `--config` file; keys may use `-` or `_`.
#[derive(Default)]
pub struct FileConf(toml::Table);

impl FileConf {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(FileConf::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
        Ok(FileConf(table))
    }

    fn get(&self, key: &str) -> Option<&toml::Value> {
        self.0
            .get(key)
            .or_else(|| self.0.get(&key.replace('-', "_")))
            .or_else(|| self.0.get(&key.replace('_', "-")))
    }

    /// A string setting: the flag, else the file, else `None`.
    pub fn string(&self, flag: Option<String>, key: &str) -> anyhow::Result<Option<String>> {
        if flag.is_some() {
            return Ok(flag);
        }
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(toml::Value::Integer(i)) => Ok(Some(i.to_string())),
            Some(other) => bail!("config key {key} must be a string, got {other}"),
        }
    }

    /// A numeric setting.
    pub fn u64(&self, flag: Option<u64>, key: &str) -> anyhow::Result<Option<u64>> {
        if flag.is_some() {
            return Ok(flag);
        }
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i as u64)),
            Some(toml::Value::String(s)) => {
                Ok(Some(s.parse().with_context(|| {
                    format!("config key {key} must be a number")
                })?))
            }
            Some(other) => bail!("config key {key} must be a non-negative number, got {other}"),
        }
    }

    /// A boolean setting.
    pub fn bool(&self, flag: Option<bool>, key: &str) -> anyhow::Result<Option<bool>> {
        if flag.is_some() {
            return Ok(flag);
        }
        match self.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => bail!("config key {key} must be true or false, got {other}"),
        }
    }
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
