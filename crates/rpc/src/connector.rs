//! The transport seam: every RPC client and block stream connects through
//! a [`Connector`]. In production it connects directly. In tests, the
//! connectors of an in-process cluster share a [`FaultNet`] — a chain of
//! rules in front of every link (as tikv's test_raftstore puts filters in
//! front of its transport) that can partition, isolate, cut one way, drop,
//! delay and reorder messages per link, in both directions of every
//! connection a node opens.
//!
//! Nodes are named (`meta-1`, a datanode id, `client`); a link is an
//! ordered pair of names. Frames are filtered before they are sealed and
//! after they are opened, so dropping or reordering never breaks the
//! per-frame MACs of a keyed connection. Block streams are byte streams,
//! filtered per read and write ([`crate::stream`] says how each rule acts
//! on them).

use crate::stream::{LinkStream, StreamState};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::net::TcpStream;

/// Which nodes a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sel {
    Any,
    One(String),
    Set(Vec<String>),
}

impl Sel {
    fn matches(&self, name: &str) -> bool {
        match self {
            Sel::Any => true,
            Sel::One(n) => n == name,
            Sel::Set(v) => v.iter().any(|n| n == name),
        }
    }

    /// Nodes whose names start with `prefix` cannot be listed ahead of
    /// time; `Set` of explicit names covers the tests' needs.
    pub fn set<S: AsRef<str>>(names: &[S]) -> Sel {
        Sel::Set(names.iter().map(|s| s.as_ref().to_string()).collect())
    }
}

/// What to do with messages on matching links.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// No message passes; connecting fails.
    Cut,
    /// Each message is lost with this probability.
    Drop(f64),
    /// Each message waits this long.
    Delay(Duration),
    /// Each message is held back behind the next one with this probability.
    Reorder(f64),
}

/// One rule: messages from `from` to `to` get `action`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub from: Sel,
    pub to: Sel,
    pub action: Action,
}

/// The verdict for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
    Delay(Duration),
    Reorder,
    Cut,
}

/// The shared fault table of an in-process cluster.
pub struct FaultNet {
    rules: RwLock<Vec<Rule>>,
    /// Listening address → node name.
    names: RwLock<HashMap<String, String>>,
    rng: Mutex<rand::rngs::StdRng>,
    /// Open block streams, checked when a rule is added: those it cuts
    /// are broken at once.
    streams: Mutex<Vec<Weak<StreamState>>>,
}

impl std::fmt::Debug for FaultNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultNet")
            .field(
                "rules",
                &*self.rules.read().unwrap_or_else(|e| e.into_inner()),
            )
            .finish()
    }
}

impl FaultNet {
    /// An empty table; `seed` drives the random drops and reorders.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(FaultNet {
            rules: RwLock::new(Vec::new()),
            names: RwLock::new(HashMap::new()),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            streams: Mutex::new(Vec::new()),
        })
    }

    /// Names the node listening on `addr`.
    pub fn name(&self, addr: &str, name: &str) {
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(addr.to_string(), name.to_string());
    }

    /// The name of the node at `addr` (the address itself when unknown).
    pub fn name_of(&self, addr: &str) -> String {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(addr)
            .cloned()
            .unwrap_or_else(|| addr.to_string())
    }

    /// Adds a rule; open streams it cuts (either direction) break at once.
    pub fn add(&self, rule: Rule) {
        self.rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(rule);
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.retain(|w| w.strong_count() > 0);
        for st in streams.iter().filter_map(Weak::upgrade) {
            if let Some((me, to)) = st.link().names() {
                if self.cuts(me, to) || self.cuts(to, me) {
                    st.cut();
                }
            }
        }
    }

    /// Tracks an open stream for [`add`](Self::add).
    pub(crate) fn register(&self, st: &Arc<StreamState>) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.retain(|w| w.strong_count() > 0);
        streams.push(Arc::downgrade(st));
    }

    /// Whether the rules cut `from` → `to` for sure (rules that fire at
    /// random are taken not to fire).
    fn cuts(&self, from: &str, to: &str) -> bool {
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
        for r in rules.iter() {
            if r.from.matches(from) && r.to.matches(to) {
                match r.action {
                    Action::Cut => return true,
                    Action::Delay(_) => return false,
                    Action::Drop(_) | Action::Reorder(_) => {}
                }
            }
        }
        false
    }

    /// Removes every rule.
    pub fn heal(&self) {
        self.rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Cuts both directions between the two groups.
    pub fn partition<S: AsRef<str>>(&self, a: &[S], b: &[S]) {
        self.cut_one_way(Sel::set(a), Sel::set(b));
        self.cut_one_way(Sel::set(b), Sel::set(a));
    }

    /// Cuts `node` off from everyone.
    pub fn isolate(&self, node: &str) {
        self.cut_one_way(Sel::One(node.into()), Sel::Any);
        self.cut_one_way(Sel::Any, Sel::One(node.into()));
    }

    /// Messages from `from` to `to` are lost; the other way works.
    pub fn cut_one_way(&self, from: Sel, to: Sel) {
        self.add(Rule {
            from,
            to,
            action: Action::Cut,
        });
    }

    /// The verdict for one message from `from` to `to`: the first rule
    /// that applies and fires decides.
    pub fn verdict(&self, from: &str, to: &str) -> Verdict {
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
        for r in rules.iter() {
            if !r.from.matches(from) || !r.to.matches(to) {
                continue;
            }
            match &r.action {
                Action::Cut => return Verdict::Cut,
                Action::Delay(d) => return Verdict::Delay(*d),
                Action::Drop(p) => {
                    if self.roll(*p) {
                        return Verdict::Drop;
                    }
                }
                Action::Reorder(p) => {
                    if self.roll(*p) {
                        return Verdict::Reorder;
                    }
                }
            }
        }
        Verdict::Pass
    }

    fn roll(&self, p: f64) -> bool {
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gen_bool(p.clamp(0.0, 1.0))
    }
}

/// How one node opens connections.
#[derive(Clone, Debug)]
pub struct Connector {
    me: Arc<str>,
    net: Option<Arc<FaultNet>>,
}

impl Default for Connector {
    fn default() -> Self {
        Connector::direct()
    }
}

impl Connector {
    /// Plain TCP, no filters (production).
    pub fn direct() -> Self {
        Connector {
            me: Arc::from("node"),
            net: None,
        }
    }

    /// Connections of the node named `me`, filtered by `net`.
    pub fn filtered(me: &str, net: Arc<FaultNet>) -> Self {
        Connector {
            me: Arc::from(me),
            net: Some(net),
        }
    }

    pub fn name(&self) -> &str {
        &self.me
    }

    pub fn net(&self) -> Option<&Arc<FaultNet>> {
        self.net.as_ref()
    }

    /// The link to the node at `addr`.
    pub fn link(&self, addr: &str) -> Link {
        Link {
            me: self.me.clone(),
            to: self.net.as_ref().map(|n| Arc::from(n.name_of(addr))),
            net: self.net.clone(),
        }
    }

    /// Connects to `addr` within `timeout`, unless the link is cut.
    pub async fn connect(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> std::io::Result<(TcpStream, Link)> {
        let link = self.link(addr);
        if link.outgoing() == Verdict::Cut || link.incoming() == Verdict::Cut {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("link {} -> {addr} is cut", self.me),
            ));
        }
        let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        s.set_nodelay(true).ok();
        Ok((s, link))
    }

    /// Connects a byte stream (block transfer) to `addr` within `timeout`,
    /// unless the link is cut; the link's rules then act on every read and
    /// write of it, and a rule added later can cut it (see
    /// [`crate::stream`]).
    pub async fn connect_stream(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> std::io::Result<LinkStream> {
        let (s, link) = self.connect(addr, timeout).await?;
        Ok(LinkStream::new(s, link, self.net.as_ref()))
    }
}

/// One connection's link, consulted per message.
#[derive(Clone, Debug)]
pub struct Link {
    me: Arc<str>,
    to: Option<Arc<str>>,
    net: Option<Arc<FaultNet>>,
}

impl Link {
    /// A link without filters.
    pub fn none() -> Link {
        Link {
            me: Arc::from("node"),
            to: None,
            net: None,
        }
    }

    /// The verdict for a message this node sends.
    pub fn outgoing(&self) -> Verdict {
        match (&self.net, &self.to) {
            (Some(n), Some(to)) => n.verdict(&self.me, to),
            _ => Verdict::Pass,
        }
    }

    /// The verdict for a message this node receives.
    pub fn incoming(&self) -> Verdict {
        match (&self.net, &self.to) {
            (Some(n), Some(to)) => n.verdict(to, &self.me),
            _ => Verdict::Pass,
        }
    }

    pub fn is_filtered(&self) -> bool {
        self.net.is_some()
    }

    /// This end's and the far end's names, on a filtered link.
    pub(crate) fn names(&self) -> Option<(&str, &str)> {
        match (&self.net, &self.to) {
            (Some(_), Some(to)) => Some((&self.me, to)),
            _ => None,
        }
    }

    /// `me -> to`, for errors.
    pub fn describe(&self) -> String {
        format!("{} -> {}", self.me, self.to.as_deref().unwrap_or("?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_per_direction() {
        let net = FaultNet::new(1);
        net.name("10.0.0.1:1", "meta-1");
        net.name("10.0.0.2:1", "meta-2");
        let c1 = Connector::filtered("meta-1", net.clone());
        let c2 = Connector::filtered("meta-2", net.clone());
        net.cut_one_way(Sel::One("meta-1".into()), Sel::One("meta-2".into()));
        assert_eq!(c1.link("10.0.0.2:1").outgoing(), Verdict::Cut);
        assert_eq!(c1.link("10.0.0.2:1").incoming(), Verdict::Pass);
        assert_eq!(c2.link("10.0.0.1:1").outgoing(), Verdict::Pass);
        assert_eq!(c2.link("10.0.0.1:1").incoming(), Verdict::Cut);
        net.heal();
        net.partition(&["meta-1"], &["meta-2"]);
        assert_eq!(c2.link("10.0.0.1:1").outgoing(), Verdict::Cut);
        net.heal();
        net.add(Rule {
            from: Sel::Any,
            to: Sel::Any,
            action: Action::Drop(0.5),
        });
        let drops = (0..1000)
            .filter(|_| c1.link("10.0.0.2:1").outgoing() == Verdict::Drop)
            .count();
        assert!((350..650).contains(&drops), "{drops}");
        assert_eq!(Connector::direct().link("x").outgoing(), Verdict::Pass);
    }
}
