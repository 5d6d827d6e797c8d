//! A private network for one chaos run: a bridge in the root namespace and
//! one network namespace per node, joined to the bridge by a veth pair.
//! Partitions are blackhole routes inside the namespaces, so no firewall
//! (iptables/nft) is needed: a route in `from`'s namespace drops whatever
//! it sends to `to` (one way); a partition is both directions. Threads of
//! the test process can enter a namespace ([`enter_ns`]), which is how
//! the workload's clients get their own address (see `cluster.rs`).
//! Everything is torn down on drop, panics included.

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

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
                self.cut_one_way(x, y);
                self.cut_one_way(y, x);
            }
        }
    }

    /// Drops every packet node `from` sends to node `to`; `to`'s packets
    /// still reach `from`. (At IP level: a TCP connection either way then
    /// fails, since its handshake or acknowledgements are lost; UDP — the
    /// gossip — from `to` still arrives.)
    pub fn cut_one_way(&mut self, from: usize, to: usize) {
        if from != to && self.cut.insert((from, to)) {
            let dst = format!("{}/32", self.ip(to));
            ip(&["-n", &self.nodes[from], "route", "add", "blackhole", &dst]);
        }
    }

    /// Whether a UDP datagram sent from node `from`'s namespace reaches a
    /// socket in node `to`'s, on the nodes' own addresses (three tries
    /// within about 0.6 s). Probes the network itself, not the daemons.
    pub fn delivers(&self, from: usize, to: usize) -> bool {
        let (to_ns, to_ip) = (self.nodes[to].clone(), self.ip(to));
        let (from_ns, from_ip) = (self.nodes[from].clone(), self.ip(from));
        let rx = std::thread::spawn(move || {
            enter_ns(&to_ns);
            UdpSocket::bind(format!("{to_ip}:0")).expect("bind a UDP probe")
        })
        .join()
        .expect("probe receiver thread");
        let dst = rx.local_addr().unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let tx = std::thread::spawn(move || {
            enter_ns(&from_ns);
            UdpSocket::bind(format!("{from_ip}:0")).expect("bind a UDP probe")
        })
        .join()
        .expect("probe sender thread");
        let mut buf = [0u8; 16];
        for _ in 0..3 {
            // A blackhole route makes the send itself fail: not delivered.
            let _ = tx.send_to(b"tdfs-probe", dst);
            if matches!(rx.recv_from(&mut buf), Ok((n, _)) if &buf[..n] == b"tdfs-probe") {
                return true;
            }
        }
        false
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

/// Moves the calling thread into the named network namespace: sockets it
/// creates from then on live there (setns(2) is per thread).
pub fn enter_ns(name: &str) {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a valid, open namespace fd; it changes only the
    // calling thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "setns into {name}: {}",
        std::io::Error::last_os_error()
    );
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
