//! A private network for one chaos run: a bridge in the root namespace and
//! one network namespace per node, joined to the bridge by a veth pair.
//! Partitions are blackhole routes inside the namespaces, so no firewall
//! (iptables/nft) is needed. Everything is torn down on drop, panics included.

use std::collections::BTreeSet;
use std::process::Command;

/// Runs `ip ARGS`, panicking with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2 is required): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Like [`ip`], ignoring failure (teardown).
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// The bridge, the namespaces and the partitions currently in force.
pub struct Netns {
    /// Unique per run: names of the bridge, namespaces and veth ends derive from it.
    tag: String,
    bridge: String,
    /// First three octets of the /24 the run uses.
    prefix: String,
    /// Namespaces created so far, by node index.
    nodes: Vec<String>,
    /// Blackholed (from, to) node pairs, so heal removes exactly those routes.
    cut: BTreeSet<(usize, usize)>,
}

impl Netns {
    /// Creates the bridge and `n` namespaces. Panics with a clear message when
    /// the process cannot manage network namespaces (not root, no iproute2).
    pub fn create(n: usize) -> Netns {
        let probe = Command::new("ip").args(["netns", "list"]).output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "the chaos suite needs `ip netns` (root and iproute2): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("the chaos suite needs iproute2's `ip` command: {e}"),
        }
        // Namespaces and routes need root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
        let uid = Command::new("id").arg("-u").output().ok();
        let uid = uid
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        assert_eq!(
            uid, "0",
            "the chaos suite must run as root (network namespaces)"
        );
        let pid = std::process::id();
        let tag = format!("{:x}", pid % 0xfffff);
        let prefix = pick_subnet(pid);
        let bridge = format!("tdb{tag}");
        let mut net = Netns {
            tag,
            bridge,
            prefix,
            nodes: Vec::new(),
            cut: BTreeSet::new(),
        };
        ip(&["link", "add", "name", &net.bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", net.prefix),
            "dev",
            &net.bridge,
        ]);
        ip(&["link", "set", &net.bridge, "up"]);
        for i in 0..n {
            net.add_node(i);
        }
        net
    }

    fn add_node(&mut self, i: usize) {
        let ns = format!("tdfs{}-{i}", self.tag);
        let host = format!("td{}h{i}", self.tag);
        let peer = format!("td{}n{i}", self.tag);
        ip(&["netns", "add", &ns]);
        self.nodes.push(ns.clone());
        ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns]);
        ip(&["link", "set", &host, "master", &self.bridge, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", self.ip(i)),
            "dev",
            &peer,
        ]);
        ip(&["-n", &ns, "link", "set", &peer, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
    }

    /// Node `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 10 + i)
    }

    /// Node `i`'s namespace name (for `ip netns exec`).
    pub fn ns(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                for (from, to) in [(x, y), (y, x)] {
                    if self.cut.insert((from, to)) {
                        let dst = format!("{}/32", self.ip(to));
                        ip(&["-n", &self.nodes[from], "route", "add", "blackhole", &dst]);
                    }
                }
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        for (from, to) in std::mem::take(&mut self.cut) {
            let dst = format!("{}/32", self.ip(to));
            ip(&["-n", &self.nodes[from], "route", "del", "blackhole", &dst]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.nodes {
            ip_quiet(&["netns", "del", ns]);
        }
        ip_quiet(&["link", "del", &self.bridge]);
    }
}

/// A 10.x.y.0/24 derived from the pid that no existing route already covers.
fn pick_subnet(pid: u32) -> String {
    let routes = Command::new("ip")
        .args(["-4", "route", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for k in 0..200u32 {
        let v = pid.wrapping_add(k * 7919);
        let p = format!("10.{}.{}", 200 + v % 50, (v / 50) % 250);
        if !routes.contains(&format!("{p}.")) {
            return p;
        }
    }
    panic!("no free 10.x.y.0/24 subnet for the chaos network");
}
