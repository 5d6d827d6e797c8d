//! `DIR/hadoop-conf/`: `core-site.xml` and `hdfs-site.xml` that point an
//! unmodified Hadoop client (`HADOOP_CONF_DIR=DIR/hadoop-conf hadoop fs ...`,
//! Spark, hdfs-native) at the cluster: `fs.defaultFS = hdfs://tdfs`, an HA
//! nameservice `tdfs` over every metadata node's HDFS address with
//! `ConfiguredFailoverProxyProvider`, which finds the leader by trying the
//! nodes in turn (followers answer `StandbyException`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Marks the files `tdfs local` wrote (and may rewrite).
const MARK: &str = "Written by tdfs local; rewritten when addresses change.";

/// The nameservice's name, so `hdfs://tdfs/` reaches the cluster.
pub const NAMESERVICE: &str = "tdfs";

fn property(name: &str, value: &str) -> String {
    format!("  <property>\n    <name>{name}</name>\n    <value>{value}</value>\n  </property>\n")
}

fn configuration(props: &[(String, String)]) -> String {
    let body: String = props.iter().map(|(k, v)| property(k, v)).collect();
    format!("<?xml version=\"1.0\"?>\n<!-- {MARK} -->\n<configuration>\n{body}</configuration>\n")
}

/// The two files' contents for metadata nodes `id → hdfs address`.
pub fn render(hdfs: &BTreeMap<u64, String>) -> (String, String) {
    let ns = NAMESERVICE;
    let core = configuration(&[("fs.defaultFS".into(), format!("hdfs://{ns}"))]);
    let nns: Vec<String> = hdfs.keys().map(|id| format!("nn{id}")).collect();
    let mut props = vec![
        ("dfs.nameservices".to_string(), ns.to_string()),
        (format!("dfs.ha.namenodes.{ns}"), nns.join(",")),
    ];
    for (id, addr) in hdfs {
        props.push((
            format!("dfs.namenode.rpc-address.{ns}.nn{id}"),
            addr.clone(),
        ));
    }
    props.push((
        format!("dfs.client.failover.proxy.provider.{ns}"),
        "org.apache.hadoop.hdfs.server.namenode.ha.ConfiguredFailoverProxyProvider".into(),
    ));
    (core, configuration(&props))
}

/// Writes `dir/hadoop-conf/{core,hdfs}-site.xml`; returns the directory.
pub fn write(dir: &Path, hdfs: &BTreeMap<u64, String>) -> std::io::Result<PathBuf> {
    let conf = dir.join("hadoop-conf");
    std::fs::create_dir_all(&conf)?;
    let (core, site) = render(hdfs);
    for (name, text) in [("core-site.xml", core), ("hdfs-site.xml", site)] {
        // A file someone else wrote (a user's or a test's own settings) stays.
        let ours = std::fs::read_to_string(conf.join(name)).map_or(true, |t| t.contains(MARK));
        if ours {
            tdfs_meta_raft::log_store::write_atomic(&conf, name, text.as_bytes())?;
        }
    }
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_node_in_one_nameservice() {
        let hdfs: BTreeMap<u64, String> =
            [(1, "127.0.0.1:9001".into()), (2, "127.0.0.1:9002".into())].into();
        let (core, site) = render(&hdfs);
        assert!(core.contains("<name>fs.defaultFS</name>\n    <value>hdfs://tdfs</value>"));
        assert!(site.contains("<name>dfs.ha.namenodes.tdfs</name>\n    <value>nn1,nn2</value>"));
        assert!(site.contains(
            "<name>dfs.namenode.rpc-address.tdfs.nn2</name>\n    <value>127.0.0.1:9002</value>"
        ));
        assert!(site.contains("ConfiguredFailoverProxyProvider"));
    }
}
