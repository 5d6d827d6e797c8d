//! The nemesis's network, pause, clock and admin faults (the kill, damage,
//! disk and client faults are in `nemesis.rs`). Each start returns the
//! [`Active`] fault with what heals it.

use super::cluster::{Cluster, Who};
use super::nemesis::{hold, Active, Fault, Nemesis, Undo};
use super::workload::{Shared, DATA_DIR};
use rand::seq::SliceRandom;
use rand::Rng;
use std::time::Duration;
use tdfs_proto::meta::{AdminRequest, AdminResponse, MetaRequest};
use tdfs_proto::DatanodeId;

impl Nemesis {
    pub(super) async fn start_more(&mut self, cl: &mut Cluster, sh: &Shared, f: Fault) -> Active {
        match f {
            Fault::PauseFollower
            | Fault::PauseDatanode
            | Fault::ClockJumpForward
            | Fault::ClockJumpBack
            | Fault::ClockJumpFar
            | Fault::ClockSkew => self.start_pause_or_clock(cl, f).await,
            Fault::RemoveMeta | Fault::Decommission | Fault::Balance | Fault::Setrep => {
                self.start_admin(cl, sh, f).await
            }
            _ => self.start_net(cl, f).await,
        }
    }

    /// The network faults.
    async fn start_net(&mut self, cl: &mut Cluster, f: Fault) -> Active {
        let dns = cl.dns.len();
        match f {
            Fault::OneWayFromLeader | Fault::OneWayToLeader => {
                self.one_way(cl, f == Fault::OneWayFromLeader).await
            }
            Fault::PartitionDatanode => {
                let j = self.rng.gen_range(0..dns);
                let others: Vec<usize> = (0..dns)
                    .filter(|&k| k != j)
                    .map(|k| cl.dns[k].net)
                    .collect();
                cl.net.partition(&[cl.dns[j].net], &others);
                let what = format!("datanode {j} cut from the other datanodes");
                Active::new(what, hold(&mut self.rng, 1500, 5000), vec![Undo::HealNet])
            }
            Fault::PartitionClientsFromLeader => {
                let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
                cl.net.partition(&[cl.client_net], &[cl.metas[l].net]);
                let what = format!("the workload's clients cut from leader meta {}", l + 1);
                Active::new(what, hold(&mut self.rng, 1500, 5000), vec![Undo::HealNet])
            }
            Fault::PartitionClientsFromDatanode => {
                let j = self.rng.gen_range(0..dns);
                cl.net.partition(&[cl.client_net], &[cl.dns[j].net]);
                let what = format!("the workload's clients cut from datanode {j}");
                Active::new(what, hold(&mut self.rng, 1500, 5000), vec![Undo::HealNet])
            }
            Fault::PartitionFollowerFromLeader => {
                let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
                let f = self.follower(cl).await;
                cl.net.partition(&[cl.metas[l].net], &[cl.metas[f].net]);
                let what = format!("follower meta {} cut from leader meta {}", f + 1, l + 1);
                Active::new(what, hold(&mut self.rng, 1500, 5000), vec![Undo::HealNet])
            }
            Fault::MetaBridge => {
                let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
                let mut pair = [(0, 1), (0, 2), (1, 2)][self.rng.gen_range(0..3)];
                // Half the time the leader is one end of the cut link.
                if self.rng.gen_bool(0.5) && pair.0 != l && pair.1 != l {
                    pair.0 = l;
                }
                let (a, b) = pair;
                let c = 3 - a - b;
                cl.net.partition(&[cl.metas[a].net], &[cl.metas[b].net]);
                let what = format!(
                    "metas {} and {} cut from each other, meta {} bridges (leader was {})",
                    a + 1,
                    b + 1,
                    c + 1,
                    l + 1
                );
                Active::new(what, hold(&mut self.rng, 1500, 5000), vec![Undo::HealNet])
            }
            _ => unreachable!("{f:?} is not a network fault"),
        }
    }

    /// SIGSTOP of a follower or datanode; wall-clock steps and skew.
    async fn start_pause_or_clock(&mut self, cl: &mut Cluster, f: Fault) -> Active {
        let dns = cl.dns.len();
        match f {
            Fault::PauseFollower => {
                let i = self.follower(cl).await;
                cl.metas[i].pause();
                let what = format!("SIGSTOP follower meta {}", i + 1);
                let undo = vec![Undo::Resume(Who::Meta(i))];
                Active::new(what, hold(&mut self.rng, 1000, 3000), undo)
            }
            Fault::PauseDatanode => {
                let j = self.rng.gen_range(0..dns);
                cl.dns[j].pause();
                // Always past stale (1.5 s), in some draws past dead (5 s).
                let d = hold(&mut self.rng, 2000, 7000);
                let what = format!("SIGSTOP datanode {j}");
                Active::new(what, d, vec![Undo::Resume(Who::Dn(j))])
            }
            Fault::ClockJumpForward | Fault::ClockJumpBack | Fault::ClockJumpFar => {
                let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
                let far = f == Fault::ClockJumpFar;
                let mins = self.rng.gen_range(if far { 16..=30i64 } else { 2..=20 });
                let sign = if f == Fault::ClockJumpBack { -1 } else { 1 };
                cl.metas[l].set_clock(sign * mins * 60_000).await;
                if far {
                    // One stamped mutation (a no-op mkdir) so the log's
                    // wall clock takes the step at once (before log format 2
                    // the retry cache swept by it; it now expires by the
                    // monotonic log tick, which the step leaves alone).
                    let _ = self.ctl.mkdirs("/chaos", true).await;
                }
                let what = format!(
                    "leader meta {}'s wall clock stepped {:+} min",
                    l + 1,
                    sign * mins
                );
                let undo = vec![Undo::ClockBack(Who::Meta(l))];
                Active::new(what, hold(&mut self.rng, 1000, 3000), undo)
            }
            Fault::ClockSkew => {
                let who = if self.rng.gen_bool(0.5) {
                    Who::Meta(self.follower(cl).await)
                } else {
                    Who::Dn(self.rng.gen_range(0..dns))
                };
                let ms = self.rng.gen_range(2_000..=30_000i64) * [1, -1][self.rng.gen_range(0..2)];
                cl.proc_mut(who).set_clock(ms).await;
                let what = format!("{who:?}'s wall clock skewed by {ms:+} ms");
                Active::new(
                    what,
                    hold(&mut self.rng, 2000, 5000),
                    vec![Undo::ClockBack(who)],
                )
            }
            _ => unreachable!("{f:?} is not a pause or clock fault"),
        }
    }

    /// The admin operations (each started together with another fault).
    async fn start_admin(&mut self, cl: &mut Cluster, sh: &Shared, f: Fault) -> Active {
        let dns = cl.dns.len();
        match f {
            Fault::RemoveMeta => {
                let i = self.follower(cl).await;
                let r = self
                    .ctl
                    .admin(AdminRequest::RemoveMeta { id: i as u64 + 1 })
                    .await;
                let what = format!("haadmin -removeMeta {} ({})", i + 1, outcome(&r));
                Active::new(
                    what,
                    hold(&mut self.rng, 1500, 4000),
                    vec![Undo::ReAddMeta(i)],
                )
            }
            Fault::Decommission => {
                let j = self.rng.gen_range(0..dns);
                let id = self.datanode_id(cl, j).await;
                let r = self
                    .ctl
                    .admin(AdminRequest::Decommission { id: id.clone() })
                    .await;
                let what = format!("dfsadmin -decommission datanode {j} ({})", outcome(&r));
                Active::new(
                    what,
                    hold(&mut self.rng, 2000, 5000),
                    vec![Undo::Recommission(id)],
                )
            }
            Fault::Balance => {
                let ctl = self.ctl.clone();
                // Tight thresholds (0.5–2 % of the average utilization): the
                // workload spreads data evenly, so 5 % would move nothing.
                let threshold_bp = self.rng.gen_range(50..=200u32);
                let h = tokio::spawn(async move {
                    let req = AdminRequest::Balance {
                        threshold_bp,
                        wait_secs: 4,
                    };
                    match ctl.admin(req).await {
                        Ok(AdminResponse::Balanced { balanced, moves }) => format!(
                            "balancer (threshold {threshold_bp} bp): balanced {balanced}, \
                             {moves} moves"
                        ),
                        other => format!("balancer: {other:?}"),
                    }
                });
                Active::new(
                    "balancer started".into(),
                    Duration::ZERO,
                    vec![Undo::Join(h)],
                )
            }
            Fault::Setrep => self.setrep(sh).await,
            _ => unreachable!("{f:?} is not an admin operation"),
        }
    }

    /// A random follower of the current leader (index).
    async fn follower(&mut self, cl: &Cluster) -> usize {
        let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
        let others: Vec<usize> = (0..3).filter(|&i| i != l).collect();
        others[self.rng.gen_range(0..2)]
    }

    /// Cuts the leader's packets to both followers (or theirs to it) and
    /// checks with UDP probes that the cut is one-way.
    async fn one_way(&mut self, cl: &mut Cluster, from_leader: bool) -> Active {
        let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
        let ln = cl.metas[l].net;
        let fs: Vec<usize> = (0..3)
            .filter(|&i| i != l)
            .map(|i| cl.metas[i].net)
            .collect();
        let links: Vec<(usize, usize)> = fs
            .iter()
            .map(|&f| if from_leader { (ln, f) } else { (f, ln) })
            .collect();
        for &(a, b) in &links {
            cl.net.cut_one_way(a, b);
        }
        let net = &cl.net;
        tokio::task::block_in_place(|| {
            for &(a, b) in &links {
                assert!(
                    !net.delivers(a, b),
                    "node {a} -> {b} still delivers after the cut"
                );
                assert!(
                    net.delivers(b, a),
                    "node {b} -> {a} lost: the cut is not one-way"
                );
            }
        });
        let what = if from_leader {
            format!(
                "leader meta {}'s packets to the followers dropped (one way, probed)",
                l + 1
            )
        } else {
            format!(
                "the followers' packets to leader meta {} dropped (one way, probed)",
                l + 1
            )
        };
        Active::new(what, hold(&mut self.rng, 1500, 5000), vec![Undo::HealNet])
    }

    /// Datanode `j`'s id, from the cluster report.
    async fn datanode_id(&self, cl: &Cluster, j: usize) -> DatanodeId {
        let addr = cl.dns[j].addr.clone();
        let what = format!("datanode {addr} in the report");
        tdfs_testkit::procs::wait_for(&what, Duration::from_secs(30), || {
            let (ctl, addr) = (self.ctl.clone(), addr.clone());
            async move {
                let r = Cluster::report(&ctl).await?;
                r.datanodes
                    .into_iter()
                    .find(|d| d.addr == addr)
                    .map(|d| d.id)
            }
        })
        .await
    }

    /// Adds metadata node `i` back until the leader lists it as a voter.
    pub(super) async fn re_add_meta(&self, cl: &Cluster, i: usize) -> String {
        let (id, addr) = (i as u64 + 1, cl.metas[i].addr.clone());
        let mut calls = 0;
        let r = super::verify::poll(Duration::from_secs(60), Duration::from_millis(200), || {
            calls += 1;
            let (ctl, addr, me) = (self.ctl.clone(), addr.clone(), cl.metas[i].addr.clone());
            let others: Vec<String> = cl.meta_addrs().into_iter().filter(|a| *a != me).collect();
            async move {
                for a in &others {
                    if let Ok(s) = ctl.node_state(a).await {
                        let voter = s.voters.iter().any(|v| v.0 == id);
                        if s.role == "leader" && voter && s.learners.is_empty() {
                            return Ok(());
                        }
                    }
                }
                let r = ctl.admin(AdminRequest::AddMeta { id, addr }).await;
                Err(format!("not a voter yet (last -addMeta: {})", outcome(&r)))
            }
        })
        .await;
        match r {
            Ok(()) => format!("haadmin -addMeta {id} (voter again, {calls} checks)"),
            Err(e) => panic!("meta {id} did not become a voter again within 60 s: {e}"),
        }
    }

    /// Recommissions datanode `id` (retried until acknowledged).
    pub(super) async fn recommission(&self, id: DatanodeId) -> String {
        let r = super::verify::poll(Duration::from_secs(60), Duration::from_millis(200), || {
            let (ctl, id) = (self.ctl.clone(), id.clone());
            async move {
                let r = ctl.admin(AdminRequest::Recommission { id }).await;
                r.map(|_| ()).map_err(|e| e.to_string())
            }
        })
        .await;
        match r {
            Ok(()) => "dfsadmin -recommission".into(),
            Err(e) => panic!("recommission {id} not acknowledged within 60 s: {e}"),
        }
    }

    /// `setrep` 2 or 4 on up to 3 acknowledged, closed data files; an
    /// acknowledged one must read back with the new replication at once
    /// (the final fsck then checks every block reached it).
    async fn setrep(&mut self, sh: &Shared) -> Active {
        let mut paths: Vec<String> = {
            let files = sh.files.lock().unwrap();
            files
                .iter()
                .filter(|f| f.path.starts_with(DATA_DIR) && f.created && f.acked_len > 0)
                .filter(|f| f.deleted.is_none() && f.failed.is_none() && !f.killed_cli && !f.busy)
                .map(|f| f.path.clone())
                .collect()
        };
        paths.shuffle(&mut self.rng);
        paths.truncate(3);
        let mut what = Vec::new();
        for p in paths {
            let replication = [2u16, 4][self.rng.gen_range(0..2)];
            let op = MetaRequest::SetReplication {
                path: p.clone(),
                replication,
            };
            let r = self.ctl.meta(op).await;
            if r.is_ok() {
                match self.ctl.stat(&p).await {
                    Ok(st) if st.replication != replication => {
                        sh.violations.lock().unwrap().push(format!(
                            "setrep {replication} {p} acknowledged, stat says {}",
                            st.replication
                        ))
                    }
                    // Deleted by its writer since: nothing to check.
                    _ => {}
                }
            }
            what.push(format!("setrep {replication} {p} ({})", outcome(&r)));
        }
        if what.is_empty() {
            what.push("setrep: no acknowledged file yet".into());
        }
        Active::new(what.join(", "), Duration::ZERO, vec![])
    }
}

/// "ok" or the error, for the nemesis's log.
fn outcome<T>(r: &Result<T, tdfs_proto::FsError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("failed: {e}"),
    }
}
