//! The status page in headless Chromium (Debian's, installed once if
//! missing).

use super::*;

/// Debian's Chromium, installed once if missing.
async fn chromium() -> &'static str {
    static BIN: OnceCell<&'static str> = OnceCell::const_new();
    BIN.get_or_init(|| async {
        let have = || Path::new("/usr/bin/chromium").exists();
        if !have() {
            let install = || {
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "chromium"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .output()
            };
            let out = install().await.expect("apt-get runs");
            if !out.status.success() {
                let _ = Command::new("apt-get").arg("update").output().await;
                let out = install().await.expect("apt-get runs");
                assert!(
                    out.status.success(),
                    "cannot install chromium: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        assert!(have(), "chromium is not installed");
        "/usr/bin/chromium"
    })
    .await
}

async fn headless(bin: &str, args: &[String]) -> std::process::Output {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .args(["--hide-scrollbars", "--window-size=1280,1000"])
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("chromium finishes within 90 s")
    .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_page_in_headless_chromium() {
    let bin = chromium().await;
    let (_dir, mut c, leader_http) = start(4).await;
    let root = c.client("root");
    files::write(&root, "/s.bin", &bytes(83, (3 * MIB) as usize), 200_000).await;
    // One datanode goes away: the page shows it as stale (then dead).
    c.stop_datanode(3).await;
    let gone = c.datanodes[3].id.clone().unwrap();
    procs::wait_for(
        "the stopped datanode is no longer live",
        Duration::from_secs(20),
        || {
            let root = root.clone();
            let gone = gone.clone();
            async move {
                match root.admin(tdfs_proto::meta::AdminRequest::Report).await {
                    Ok(tdfs_proto::meta::AdminResponse::Report(r)) => r
                        .datanodes
                        .iter()
                        .any(|d| d.id == gone && d.state != "live")
                        .then_some(()),
                    _ => None,
                }
            }
        },
    )
    .await;
    // Served by a follower too; rendered by a real browser.
    let follower = c
        .meta_http
        .values()
        .find(|h| **h != leader_http)
        .unwrap()
        .clone();
    let out = headless(bin, &["--dump-dom".into(), format!("http://{follower}/")]).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(dom.matches("class=\"datanode-row\"").count(), 4, "{dom}");
    for s in &c.datanodes {
        assert!(
            dom.contains(&s.id.as_ref().unwrap().0),
            "row for {:?}",
            s.id
        );
    }
    assert!(
        dom.contains("class=\"stale\"") || dom.contains("class=\"dead\""),
        "the stopped datanode shows as stale or dead: {dom}"
    );
    assert!(dom.contains("class=\"bar"), "capacity bars");
    assert_eq!(dom.matches("class=\"meta-row\"").count(), 3);
    for k in [
        "Leader",
        "Term",
        "Capacity used",
        "Under-replicated blocks",
        "Corrupt blocks",
        "Missing blocks",
    ] {
        assert!(dom.contains(k), "summary has {k}");
    }
    // The counts are the leader's maintained ones, and agree with a walk of the namespace.
    let walked = root.fsck("/").await.unwrap();
    for (id, want) in [
        ("files", walked.files),
        ("directories", walked.directories),
        ("blocks", walked.blocks),
        ("corrupt_blocks", walked.corrupt),
        ("missing_blocks", walked.missing),
    ] {
        let needle = format!("id=\"{id}\">{want}<");
        assert!(dom.contains(&needle), "status page shows {needle}: {dom}");
    }
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        bin,
        &[
            format!("--screenshot={}", shot.display()),
            format!("http://{leader_http}/"),
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot saved");
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "a real PNG"
    );
    println!("status page screenshot: {}", shot.display());
    c.shutdown().await;
}
