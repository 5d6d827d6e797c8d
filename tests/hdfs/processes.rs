//! `tdfs meta` and `tdfs datanode` processes with `--hdfs-addr`: a leader
//! killed (-9) during a Hadoop put, the datanode daemon's DataTransferProtocol.

use super::*;

/// Child processes killed (-9) when dropped, a failing test's included.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Real daemons: three `tdfs meta --hdfs-addr` and three `tdfs datanode
/// --hdfs-addr` processes, a Hadoop configuration with the HA nameservice
/// over the metas' HDFS addresses (as `tdfs local` writes it), and a
/// `kill -9` of the leader's process in the middle of a multi-block
/// FsShell `-put`: Hadoop's failover proxy finds the new leader, the put
/// finishes and the file reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_9_of_a_meta_process_during_a_hadoop_multi_block_put() {
    let h = Hadoop::get().await;
    let mut m = procs::MetaProcs::start_hdfs(3, &[]);
    let client = m.client("root");
    let leader = m.wait_leader(&client, Duration::from_secs(60)).await;
    let ports = procs::free_ports(6);
    let mut dns = Procs(Vec::new());
    for i in 0..3 {
        let dir = m.dir.path().join(format!("dn-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(m.dir.path().join(format!("dn-{i}.log"))).unwrap();
        let child = std::process::Command::new(procs::tdfs_bin())
            .args(["datanode", "--addr", &format!("127.0.0.1:{}", ports[2 * i])])
            .args(["--hdfs-addr", &format!("127.0.0.1:{}", ports[2 * i + 1])])
            .args(["--meta", &m.addr_list().join(",")])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        dns.0.push(child);
    }
    procs::wait_for(
        "three datanodes announcing their HDFS address",
        Duration::from_secs(60),
        || async {
            match client
                .admin(tdfs_proto::meta::AdminRequest::Report)
                .await
                .ok()?
            {
                tdfs_proto::meta::AdminResponse::Report(r) => {
                    (r.datanodes.iter().filter(|d| d.hdfs.is_some()).count() >= 3).then_some(())
                }
                _ => None,
            }
        },
    )
    .await;
    let conf = tdfs_local::hadoop_conf::write(m.dir.path(), &m.hdfs).unwrap();
    let data = bytes(13, (48 * BLOCK + 5) as usize);
    let src = m.dir.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    let cmds = vec![
        root(&["-mkdir", "-p", "/k9"]),
        root(&[
            "-Ddfs.blocksize=1048576",
            "-put",
            &src.display().to_string(),
            "/k9/big.bin",
        ]),
    ];
    let put_conf = conf.clone();
    let put = tokio::spawn(async move { h.fs_shell(&put_conf, &cmds).await });
    let t = Instant::now();
    let blocks = procs::wait_for(
        "4 blocks of the Hadoop write",
        Duration::from_secs(180),
        || async {
            let lbs = client
                .block_locations("/k9/big.bin._COPYING_", 0, u64::MAX / 2)
                .await
                .ok()?;
            (lbs.blocks.len() >= 4).then_some(lbs.blocks.len())
        },
    )
    .await;
    m.kill(leader);
    eprintln!(
        "leader {leader} killed -9 with {blocks} of 49 blocks written ({:?} into the put)",
        t.elapsed()
    );
    assert!(blocks < 49, "the kill lands in the middle of the write");
    let r = put.await.unwrap();
    if r[1].code != 0 {
        m.dump_logs();
    }
    r[0].ok();
    r[1].ok();
    let client = m.client("root");
    let st = client.stat("/k9/big.bin").await.unwrap();
    assert_eq!(st.length, data.len() as u64);
    let back = read(&client, "/k9/big.bin", 0, st.length).await;
    assert_eq!(
        sha(&back),
        sha(&data),
        "the file written across kill -9 reads back"
    );
    let now = m.wait_leader(&client, Duration::from_secs(30)).await;
    assert_ne!(now, leader);
    eprintln!(
        "put, read back and a new leader {:?} after the put began",
        t.elapsed()
    );
    assert!(!m.panicked());
    drop(dns);
}

/// `tdfs datanode --hdfs-addr` serves DataTransferProtocol there and
/// announces it at registration (Hadoop clients learn it as the xfer port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdfs_datanode_daemon_serves_and_announces_hdfs_addr() {
    let m = procs::MetaProcs::start(1);
    let ports = procs::free_ports(2);
    let (addr, hdfs) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(procs::tdfs_bin())
        .args(["datanode", "--addr", &addr, "--hdfs-addr", &hdfs])
        .args(["--meta", &m.addr_list().join(",")])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let c = m.client("root");
    let report = procs::wait_for(
        "the datanode's registration",
        Duration::from_secs(30),
        || async {
            match c.admin(tdfs_proto::meta::AdminRequest::Report).await.ok()? {
                tdfs_proto::meta::AdminResponse::Report(r) => {
                    r.datanodes.into_iter().find(|d| d.hdfs.is_some())
                }
                _ => None,
            }
        },
    )
    .await;
    assert_eq!(report.hdfs.as_deref(), Some(hdfs.as_str()));
    let (_, r) = dtp_raw::send_raw(&hdfs, &[0, 27, 81]).await;
    let r = r.expect("an answer");
    assert!(r.message.unwrap_or_default().contains("Version Mismatch"));
    child.kill().unwrap();
    child.wait().unwrap();
}
