//! The from-scratch recomputation tests compare the incremental block map with.

use super::*;

impl BlockMap {
    /// Recomputes everything from scratch and compares with what was kept
    /// incrementally; an error names the first disagreement. For tests.
    pub fn check_consistency(&self, nodes: &Nodes) -> Result<(), String> {
        let mut h = Health::default();
        let mut under = BTreeSet::new();
        let mut over = BTreeSet::new();
        let mut bad = BTreeSet::new();
        for (id, e) in self.map.iter() {
            let id = &id;
            let q = self.quarantined.get(id).is_some_and(|q| !q.is_empty());
            let (class, counted) = classify(e, nodes, q);
            if class != e.class || counted != e.counted {
                return Err(format!(
                    "block {id}: kept {:?}/{} but recomputed {class:?}/{counted}",
                    e.class, e.counted
                ));
            }
            if e.committed() && e.known() {
                h.blocks += 1;
            }
            match class {
                Class::Under => {
                    h.under_replicated += 1;
                    under.insert((counted, *id));
                }
                Class::Young => h.under_replicated += 1,
                Class::Over => {
                    h.over_replicated += 1;
                    over.insert(*id);
                }
                Class::Missing => {
                    h.missing += 1;
                    bad.insert(*id);
                }
                Class::Corrupt => {
                    h.corrupt += 1;
                    bad.insert(*id);
                }
                _ => {}
            }
        }
        if h != self.health {
            return Err(format!("health kept {:?}, recomputed {h:?}", self.health));
        }
        if under != self.under || over != self.over || bad != self.bad {
            return Err("queues disagree with the classes".into());
        }
        let mut by_node: BTreeMap<NodeIx, Vec<BlockId>> = BTreeMap::new();
        for (id, e) in self.map.iter() {
            for n in e.replicas.iter() {
                by_node.entry(n).or_default().push(id);
            }
        }
        for (n, t) in self.by_node.iter().enumerate() {
            let kept: Vec<BlockId> = t.iter().collect();
            let want = by_node.remove(&(n as NodeIx)).unwrap_or_default();
            if kept != want {
                return Err(format!(
                    "node {n}: index has {} blocks, the entries name it in {} \
                     (first kept {:?}, first recomputed {:?})",
                    kept.len(),
                    want.len(),
                    kept.first(),
                    want.first()
                ));
            }
        }
        if let Some((n, v)) = by_node.into_iter().next() {
            return Err(format!(
                "node {n} holds {} blocks but has no index",
                v.len()
            ));
        }
        Ok(())
    }
}
