//! Real processes: three `tdfs meta` and four `tdfs datanode`; kill -9 of a
//! datanode holding replication-3 data brings fsck back to HEALTHY with every
//! block at three live replicas, and its return removes the surplus.

use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tdfs_testkit::procs::*;

struct Datanode {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

impl Drop for Datanode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_datanode(addr: &str, dir: &std::path::Path, meta: &str, log: &std::path::Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(tdfs_bin())
        .args(["datanode", "--addr", addr, "--meta", meta])
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn report(c: &tdfs_client::MetaClient) -> Option<tdfs_proto::meta::ClusterReport> {
    match c.admin(tdfs_proto::meta::AdminRequest::Report).await.ok()? {
        tdfs_proto::meta::AdminResponse::Report(r) => Some(r),
        _ => None,
    }
}

/// Six blocks, each at exactly three replicas.
async fn healthy(c: &tdfs_client::MetaClient) -> Option<()> {
    let f = c.fsck("/").await.ok()?;
    (f.blocks == 6 && f.under_replicated == 0 && f.over_replicated == 0 && f.missing == 0)
        .then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_datanode_process_is_re_replicated_and_its_return_trimmed() {
    let m = MetaProcs::start_with(3, &["--dead-after-ms", "1500", "--balance-threshold", "0"]);
    let meta = m.addr_list().join(",");
    let ports = free_ports(4);
    let mut dns: Vec<Datanode> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let addr = format!("127.0.0.1:{p}");
            let dir = m.dir.path().join(format!("dn-{i}"));
            let child = spawn_datanode(
                &addr,
                &dir,
                &meta,
                &m.dir.path().join(format!("dn-{i}.log")),
            );
            Datanode { child, addr, dir }
        })
        .collect();
    let c = m.client("root");
    m.wait_leader(&c, Duration::from_secs(20)).await;
    wait_for("four live datanodes", Duration::from_secs(20), || async {
        let r = report(&c).await?;
        (r.datanodes.iter().filter(|d| d.state == "live").count() == 4).then_some(())
    })
    .await;
    // 6 MiB in 1 MiB blocks through the CLI, as a user would.
    let src = m.dir.path().join("src.bin");
    let data: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let (code, _, err) = run_tdfs(
        &[
            "dfs",
            "--meta",
            &meta,
            "--user",
            "root",
            "-put",
            "-blocksize",
            "1m",
            src.to_str().unwrap(),
            "/f",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let t0 = std::time::Instant::now();
    wait_for("initial health", Duration::from_secs(20), || healthy(&c)).await;
    println!("put -> healthy: {:?}", t0.elapsed());

    let t = std::time::Instant::now();
    // kill -9 one datanode.
    let victim = dns.remove(1);
    let (vaddr, vdir) = (victim.addr.clone(), victim.dir.clone());
    drop(victim);
    wait_for(
        "every block back at three live replicas",
        Duration::from_secs(40),
        || async {
            healthy(&c).await?;
            let lbs = c.block_locations("/f", 0, u64::MAX).await.ok()?;
            lbs.blocks
                .iter()
                .all(|b| b.locations.len() == 3 && b.locations.iter().all(|l| l.addr != vaddr))
                .then_some(())
        },
    )
    .await;
    println!("kill -9 -> healthy: {:?}", t.elapsed());
    let back = m.dir.path().join("back.bin");
    let (code, _, err) = run_tdfs(
        &[
            "dfs",
            "--meta",
            &meta,
            "--user",
            "root",
            "-get",
            "/f",
            back.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(&back).unwrap() == data);

    // It comes back with its old replicas: the surplus goes.
    let t = std::time::Instant::now();
    let child = spawn_datanode(&vaddr, &vdir, &meta, &m.dir.path().join("dn-back.log"));
    dns.push(Datanode {
        child,
        addr: vaddr,
        dir: vdir,
    });
    wait_for(
        "the surplus removed after the return",
        Duration::from_secs(40),
        || async {
            let r = report(&c).await?;
            let live = r.datanodes.iter().filter(|d| d.state == "live").count();
            let blocks: u64 = r.datanodes.iter().map(|d| d.blocks).sum();
            (live == 4 && blocks == 18 && healthy(&c).await.is_some()).then_some(())
        },
    )
    .await;
    println!("return -> surplus removed: {:?}", t.elapsed());
    assert!(!m.panicked());
}
