//! Options shared by every client command: where the cluster is and who the
//! user is. Parsed by hand so that HDFS-style commands (`-ls -R /x`) keep
//! their spelling.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::Arc;
use tdfs_client::{ClientConfig, MetaClient};
use tdfs_rpc::ClusterKey;

/// Generic options pulled out of a client command line.
#[derive(Default, Debug)]
pub struct ClientOpts {
    pub meta: Option<String>,
    pub cluster: Option<PathBuf>,
    pub user: Option<String>,
    pub key_file: Option<PathBuf>,
    pub json: bool,
    /// Everything else, in order.
    pub rest: Vec<String>,
}

impl ClientOpts {
    /// Splits the generic options from the command's own arguments.
    pub fn parse(args: Vec<String>) -> anyhow::Result<Self> {
        let mut o = ClientOpts::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (a.clone(), None),
            };
            let mut value = |flag: &str| -> anyhow::Result<String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it.next().with_context(|| format!("{flag} needs a value")),
                }
            };
            match name.as_str() {
                "--meta" | "-meta" => o.meta = Some(value("--meta")?),
                "--cluster" => o.cluster = Some(value("--cluster")?.into()),
                "--user" => o.user = Some(value("--user")?),
                "--cluster-key-file" => o.key_file = Some(value("--cluster-key-file")?.into()),
                "--json" | "-json" => o.json = true,
                _ => o.rest.push(a),
            }
        }
        Ok(o)
    }

    /// The metadata addresses: `--meta`, else `TDFS_META`, else `--cluster`'s file.
    pub fn meta_addrs(&self) -> anyhow::Result<Vec<String>> {
        let list = if let Some(m) = &self.meta {
            m.clone()
        } else if let Some(c) = &self.cluster {
            return addrs_from_cluster_file(c);
        } else if let Ok(m) = std::env::var("TDFS_META") {
            m
        } else if std::path::Path::new("tdfs-data/cluster.json").exists() {
            return addrs_from_cluster_file("tdfs-data/cluster.json".as_ref());
        } else {
            bail!("no metadata node given: use --meta HOST:PORT, TDFS_META or --cluster DIR/cluster.json");
        };
        let v: Vec<String> = list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if v.is_empty() {
            bail!("--meta names no address");
        }
        Ok(v)
    }

    /// The user: `--user`, else `TDFS_USER`, else the OS user.
    pub fn user(&self) -> String {
        self.user
            .clone()
            .or_else(|| std::env::var("TDFS_USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(tdfs_meta_raft::config::current_user)
    }

    pub fn client(&self) -> anyhow::Result<Arc<MetaClient>> {
        let mut cfg = ClientConfig::new(self.meta_addrs()?, self.user());
        // How long a command keeps retrying while no leader answers.
        if let Some(ms) = std::env::var("TDFS_CLIENT_DEADLINE_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            cfg.deadline = std::time::Duration::from_millis(ms);
            cfg.attempt_timeout = cfg.attempt_timeout.min(cfg.deadline);
        }
        cfg.key = self.cluster_key()?;
        Ok(Arc::new(MetaClient::new(cfg)?))
    }

    /// The cluster key, if one is at hand: `--cluster-key-file`, else
    /// `TDFS_CLUSTER_KEY_FILE`, else the `cluster_key_file` that the cluster
    /// file records (as `tdfs local` writes it), else a `cluster.key` beside
    /// the cluster file. Without it, admin commands are refused on a keyed
    /// cluster and file data moves under block tokens.
    pub fn cluster_key(&self) -> anyhow::Result<Option<ClusterKey>> {
        let explicit = self.key_file.clone().or_else(|| {
            std::env::var_os("TDFS_CLUSTER_KEY_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        if let Some(k) = explicit {
            return Ok(Some(ClusterKey::from_file(&k).map_err(anyhow::Error::msg)?));
        }
        match self.cluster_key_path() {
            Some(k) => Ok(Some(ClusterKey::from_file(&k).map_err(anyhow::Error::msg)?)),
            None => Ok(None),
        }
    }

    /// The key file named by (or lying beside) the cluster file in use.
    fn cluster_key_path(&self) -> Option<PathBuf> {
        let file = match &self.cluster {
            Some(c) if c.is_dir() => c.join("cluster.json"),
            Some(c) => c.clone(),
            None if self.meta.is_none() && std::env::var_os("TDFS_META").is_none() => {
                PathBuf::from("tdfs-data/cluster.json")
            }
            None => return None,
        };
        let recorded = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["cluster_key_file"].as_str().map(PathBuf::from));
        if let Some(k) = recorded {
            return Some(k);
        }
        let k = file.parent()?.join("cluster.key");
        k.exists().then_some(k)
    }
}

fn addrs_from_cluster_file(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let path = if path.is_dir() {
        path.join("cluster.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let addrs: Vec<String> = v["meta"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["addr"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if addrs.is_empty() {
        bail!("{} lists no metadata node", path.display());
    }
    Ok(addrs)
}
