//! What the leader does beyond answering calls: take over the soft state's
//! leader duties when elected, initialize a fresh namespace, and run the
//! block policies, lease recovery, truncate recovery, the trash emptier
//! and the freeing of large deletes.

use crate::config::defaults;
use crate::node::MetaNode;
use openraft::ServerState;
use std::sync::Arc;
use std::time::Duration;
use tdfs_namespace::{AdminState, LogOp, Outcome};
use tdfs_proto::event::EventKind;
use tdfs_rpc::Shutdown;

/// Follows Raft's state: on election the soft state takes the leader's
/// duties (and forgets them on stepping down); a fresh namespace is
/// initialized; once an entry of the new term is applied the node is
/// ready to lead.
pub async fn watch_leadership(node: Arc<MetaNode>, mut shutdown: Shutdown) {
    let mut metrics = node.raft().metrics();
    let mut led: Option<u64> = None;
    loop {
        let (state, term, applied_term) = {
            let m = metrics.borrow_and_update();
            (
                m.state,
                m.current_term,
                m.last_applied.map(|l| l.leader_id.term),
            )
        };
        let core = node.core().clone();
        if state == ServerState::Leader && led != Some(term) {
            led = Some(term);
            let now = core.now();
            core.lead_log_clock();
            core.view(|v| v.become_leader(now));
            node.publish(EventKind::LeaderElected { term });
            tracing::info!("node {} is the leader in term {term}", node.id());
            let n = node.clone();
            tokio::spawn(async move { init_namespace(&n).await });
        } else if state != ServerState::Leader {
            if let Some(t) = led.take() {
                core.log_clock.step_down();
                core.view(|v| v.step_down());
                node.publish(EventKind::SteppedDown { term: t });
            }
        }
        let ready = if state == ServerState::Leader && applied_term == Some(term) {
            term
        } else {
            0
        };
        node.ready_term()
            .send_if_modified(|t| std::mem::replace(t, ready) != ready);
        if ready != 0 {
            core.commands.notify_waiters();
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            r = metrics.changed() => if r.is_err() { return },
        }
    }
}

async fn init_namespace(node: &MetaNode) {
    if node.core().ns(|r| r.ns.is_initialized()) {
        return;
    }
    let op = LogOp::Init {
        superuser: node.config().superuser.clone(),
        supergroup: "supergroup".into(),
    };
    match node.propose_system(op).await {
        Ok(_) => tracing::info!(
            "namespace initialized, superuser {}",
            node.config().superuser
        ),
        Err(e) => tracing::warn!(fault = "peer", "namespace initialization failed: {e}"),
    }
}

/// The leader's periodic duties, until shutdown.
pub async fn drive(node: Arc<MetaNode>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_millis(defaults::POLICY_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut emptier = 0;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        let core = node.core();
        let now = core.now();
        let drained = core.view(|v| v.tick(now));
        if !node.leader_ready() {
            continue;
        }
        fail::fail_point!("meta::leader-driver");
        round(&node, drained, &mut emptier).await;
    }
}

/// One round: the block policies, then what needs the log.
/// `emptier` is when the trash emptier runs next.
async fn round(node: &Arc<MetaNode>, drained: Vec<tdfs_proto::DatanodeId>, emptier: &mut u64) {
    let core = node.core();
    let now = core.now();
    let threshold = node.balance_threshold();
    let out = core.view(|v| v.round(now, threshold, drained));
    node.rounds().send_modify(|r| *r += 1);
    if out.copies + out.deletions > 0 {
        core.commands.notify_waiters();
    }
    for id in out.decommissioned {
        let done = core.view(|v| v.admin_of(&id)) == Some(AdminState::Decommissioned);
        if done {
            continue;
        }
        tracing::info!("datanode {id} is drained: marking it decommissioned");
        let op = LogOp::SetAdminState {
            id,
            state: AdminState::Decommissioned,
        };
        if let Err(e) = node.propose_system(op).await {
            tracing::warn!(
                fault = "peer",
                "marking a datanode decommissioned failed: {e}"
            );
        }
    }
    recover_leases(node).await;
    crate::truncate::recover_truncates(node).await;
    crate::trash::expire(node, emptier).await;
    crate::consistency::compare(node).await;
    if core.ns(|r| r.ns.pending_reclaim()) > 0 {
        let op = LogOp::Reclaim {
            budget: node.config().reclaim_budget,
        };
        if let Err(e) = node.propose_system(op).await {
            tracing::debug!("reclaim step: {e}");
        }
    }
    let h = core.view(|v| v.blocks.health());
    let (live, stale, dead) = core.view(|v| v.liveness_counts());
    node.metrics().set_health(crate::metrics::Health {
        live,
        stale,
        dead,
        blocks: h.blocks,
        under_replicated: h.under_replicated,
        missing: h.missing,
        corrupt: h.corrupt,
    });
}

/// Closes files whose writer stopped renewing its lease.
async fn recover_leases(node: &Arc<MetaNode>) {
    let core = node.core();
    let now = core.now();
    let timeout = Duration::from_millis(node.config().lease_timeout_ms);
    let expired = core.view(|v| v.expired_leases(now, timeout));
    for (holder, file) in expired {
        let plan = core.both(|r, v| r.ns.open_file(file).map(|f| v.recovery_for(&f)));
        let Some(plan) = plan else { continue };
        if plan.holder != holder {
            continue;
        }
        tracing::info!(
            "lease expired on {}: recovering (drop last block: {})",
            plan.path,
            plan.drop_last
        );
        let path = plan.path.clone();
        let op = LogOp::RecoverLease {
            path: plan.path,
            holder: plan.holder,
            expect: plan.expect,
            last: plan.last,
            drop_last: plan.drop_last,
        };
        match node.propose_system(op).await {
            Ok(Outcome::Bool(true)) => node.publish(EventKind::LeaseRecovered { path }),
            Ok(_) => {}
            Err(e) => tracing::warn!(fault = "peer", "lease recovery of {path} failed: {e}"),
        }
    }
}
