//! The status page at `/`: the cluster as a person wants to see it. Every
//! metadata node serves it (followers too): the figures come through the
//! client library, from the leader where only the leader knows them.

use std::fmt::Write;
use std::time::Duration;
use tdfs_client::MetaClient;
use tdfs_proto::meta::{AdminRequest, AdminResponse, ClusterReport, HealthReport, NodeState};

/// One metadata node as seen from here.
pub struct MetaRow {
    pub id: u64,
    pub addr: String,
    /// The node's own state, or why it could not be asked.
    pub state: Result<NodeState, String>,
}

/// Everything the page shows.
pub struct Status {
    pub this: Option<NodeState>,
    pub metas: Vec<MetaRow>,
    pub report: Result<ClusterReport, String>,
    /// Block and namespace counts the leader maintains as they change (never a walk).
    pub health: Result<HealthReport, String>,
}

const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks this node, its peers and the leader for the page's figures.
pub async fn gather(c: &MetaClient, self_rpc: &str) -> Status {
    let this = timed(c.node_state(self_rpc)).await.ok();
    // Every member is asked at once: a dead one costs the timeout once.
    let members: Vec<(u64, String)> = this
        .iter()
        .flat_map(|me| me.voters.iter().chain(me.learners.iter()).cloned())
        .collect();
    let metas = futures_util::future::join_all(members.into_iter().map(|(id, addr)| async move {
        let state = timed(c.node_state(&addr)).await;
        MetaRow { id, addr, state }
    }))
    .await;
    let report = match timed(c.admin(AdminRequest::Report)).await {
        Ok(AdminResponse::Report(r)) => Ok(r),
        Ok(other) => Err(format!("unexpected reply {other:?}")),
        Err(e) => Err(e),
    };
    let health = match timed(c.admin(AdminRequest::Health)).await {
        Ok(AdminResponse::Health(h)) => Ok(h),
        Ok(other) => Err(format!("unexpected reply {other:?}")),
        Err(e) => Err(e),
    };
    Status {
        this,
        metas,
        report,
        health,
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, tdfs_proto::FsError>>,
) -> Result<T, String> {
    match tokio::time::timeout(ASK_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2 s".into()),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Bytes as a person reads them.
pub fn human(b: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#f2f2f2}
.bar{width:160px;height:14px;background:#eee;border:1px solid #aaa;display:inline-block;vertical-align:middle}
.fill{height:100%;background:#4a8}.warn .fill{background:#d93}.full .fill{background:#c33}
.live{color:#282}.stale{color:#b80}.dead{color:#c22}.decommissioning,.decommissioned{color:#558}
.bad{color:#c22;font-weight:bold}.ok{color:#282}";

/// Renders the page.
pub fn render(s: &Status) -> String {
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tdfs status</title>\
         <style>{STYLE}</style></head><body><h1>tdfs cluster</h1>"
    );
    alarms(&mut h, s);
    summary(&mut h, s);
    meta_table(&mut h, s);
    datanode_table(&mut h, s);
    h.push_str("<p><a href=\"/metrics\">metrics</a></p></body></html>");
    h
}

/// A consistency alarm raised by any metadata node, in a banner above
/// everything else: the members diverged and need an operator.
fn alarms(h: &mut String, s: &Status) {
    let mut raised: Vec<(u64, &str)> = s
        .metas
        .iter()
        .filter_map(|m| Some((m.id, m.state.as_ref().ok()?.alarm.as_deref()?)))
        .collect();
    if let Some(me) = &s.this {
        if let Some(a) = me.alarm.as_deref() {
            if !raised.iter().any(|(id, _)| *id == me.id) {
                raised.push((me.id, a));
            }
        }
    }
    for (id, a) in raised {
        let _ = write!(
            h,
            "<p class=\"bad alarm\" id=\"alarm-{id}\">CONSISTENCY ALARM on metadata node {id}: {}</p>",
            esc(a)
        );
    }
}

fn summary(h: &mut String, s: &Status) {
    h.push_str("<h2>Summary</h2><table id=\"summary\">");
    let row = |h: &mut String, k: &str, v: String| {
        let _ = write!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    if let Some(me) = &s.this {
        row(h, "This node", format!("{} ({})", me.id, esc(&me.role)));
        let leader = me.leader.map(|l| l.to_string()).unwrap_or("none".into());
        row(h, "Leader", leader);
        row(h, "Term", me.term.to_string());
    }
    match &s.report {
        Ok(r) => {
            let cap: u64 = r.datanodes.iter().map(|d| d.capacity).sum();
            let used: u64 = r.datanodes.iter().map(|d| d.used).sum();
            let pct = if cap > 0 {
                used as f64 * 100.0 / cap as f64
            } else {
                0.0
            };
            row(
                h,
                "Capacity used",
                format!("{} of {} ({pct:.1}%)", human(used), human(cap)),
            );
            let count = |st: &str| r.datanodes.iter().filter(|d| d.state == st).count();
            row(
                h,
                "Datanodes",
                format!(
                    "{} live, {} stale, {} dead",
                    count("live"),
                    count("stale"),
                    count("dead")
                ),
            );
        }
        Err(e) => row(h, "Datanodes", format!("<span class=bad>{}</span>", esc(e))),
    }
    match &s.health {
        Ok(f) => {
            for (k, v) in [
                ("Files", f.files),
                ("Directories", f.directories),
                ("Blocks", f.blocks),
            ] {
                row(h, k, format!("<span id=\"{}\">{v}</span>", slug(k)));
            }
            for (k, v) in [
                ("Under-replicated blocks", f.under_replicated),
                ("Corrupt blocks", f.corrupt),
                ("Missing blocks", f.missing),
            ] {
                let cls = if v == 0 { "ok" } else { "bad" };
                row(
                    h,
                    k,
                    format!("<span class={cls} id=\"{}\">{v}</span>", slug(k)),
                );
            }
        }
        Err(e) => row(h, "Blocks", format!("<span class=bad>{}</span>", esc(e))),
    }
    h.push_str("</table>");
}

fn slug(k: &str) -> String {
    k.to_ascii_lowercase().replace([' ', '-'], "_")
}

fn meta_table(h: &mut String, s: &Status) {
    h.push_str(
        "<h2>Metadata nodes</h2><table id=\"meta\"><tr><th>id</th><th>address</th>\
         <th>role</th><th>term</th><th>last log</th><th>applied</th><th>alarm</th></tr>",
    );
    for m in &s.metas {
        match &m.state {
            Ok(st) => {
                let _ = write!(
                    h,
                    "<tr class=\"meta-row\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                     <td>{}</td><td>{}</td><td>{}</td></tr>",
                    m.id,
                    esc(&m.addr),
                    esc(&st.role),
                    st.term,
                    st.last_log_index,
                    st.applied_index,
                    st.alarm
                        .as_deref()
                        .map(|a| format!("<span class=bad>{}</span>", esc(a)))
                        .unwrap_or_else(|| "none".into())
                );
            }
            Err(e) => {
                let _ = write!(
                    h,
                    "<tr class=\"meta-row\"><td>{}</td><td>{}</td>\
                     <td class=dead>unreachable</td><td colspan=4>{}</td></tr>",
                    m.id,
                    esc(&m.addr),
                    esc(e)
                );
            }
        }
    }
    h.push_str("</table>");
}

fn datanode_table(h: &mut String, s: &Status) {
    h.push_str(
        "<h2>Datanodes</h2><table id=\"datanodes\"><tr><th>id</th><th>address</th>\
         <th>state</th><th>capacity</th><th>used</th><th>blocks</th><th>last contact</th></tr>",
    );
    let Ok(r) = &s.report else {
        h.push_str("</table>");
        return;
    };
    for d in &r.datanodes {
        let state = if d.admin_state != "normal" && d.state == "live" {
            d.admin_state.as_str()
        } else {
            d.state.as_str()
        };
        let pct = if d.capacity > 0 {
            (d.used as f64 * 100.0 / d.capacity as f64).min(100.0)
        } else {
            0.0
        };
        let level = if pct >= 90.0 {
            "full"
        } else if pct >= 75.0 {
            "warn"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr class=\"datanode-row\" data-id=\"{id}\"><td>{id}</td><td>{addr}</td>\
             <td class=\"{state}\">{state}</td><td>{cap}</td>\
             <td><span class=\"bar {level}\" title=\"{pct:.1}%\"><span class=fill \
             style=\"width:{pct:.1}%;display:block\"></span></span> {used} ({pct:.1}%)</td>\
             <td>{blocks}</td><td>{contact:.1} s ago</td></tr>",
            id = esc(&d.id.0),
            addr = esc(&d.addr),
            state = esc(state),
            cap = human(d.capacity),
            used = human(d.used),
            blocks = d.blocks,
            contact = d.last_contact_ms as f64 / 1000.0,
        );
    }
    h.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdfs_proto::meta::DatanodeReport;
    use tdfs_proto::DatanodeId;

    #[test]
    fn renders_rows_and_escapes() {
        let dn = |id: &str, state: &str, admin: &str| DatanodeReport {
            id: DatanodeId(id.into()),
            addr: "127.0.0.1:1".into(),
            http: None,
            hdfs: None,
            state: state.into(),
            admin_state: admin.into(),
            capacity: 1000,
            used: 950,
            remaining: 50,
            blocks: 3,
            last_contact_ms: 1500,
        };
        let s = Status {
            this: None,
            metas: vec![MetaRow {
                id: 2,
                addr: "x".into(),
                state: Err("down".into()),
            }],
            report: Ok(ClusterReport {
                leader: Some(1),
                datanodes: vec![
                    dn("a<b", "live", "normal"),
                    dn("c", "dead", "normal"),
                    dn("d", "live", "decommissioning"),
                ],
            }),
            health: Err("no leader".into()),
        };
        let html = render(&s);
        assert_eq!(html.matches("class=\"datanode-row\"").count(), 3);
        assert!(html.contains("a&lt;b"));
        assert!(html.contains(">decommissioning<"));
        assert!(html.contains("bar full"));
        assert!(html.contains("unreachable"));
        assert_eq!(human(1536), "1.5 KiB");
        assert!(!html.contains("CONSISTENCY ALARM"));
    }

    #[test]
    fn a_consistency_alarm_is_shown() {
        let st = NodeState {
            id: 3,
            addr: "y".into(),
            http: None,
            role: "follower".into(),
            term: 2,
            leader: Some(1),
            last_log_index: 9,
            applied_index: 9,
            voters: vec![],
            learners: vec![],
            alarm: Some("namespace hash at index 9 differs <x>".into()),
            rss_bytes: 0,
        };
        let s = Status {
            this: None,
            metas: vec![MetaRow {
                id: 3,
                addr: "y".into(),
                state: Ok(st),
            }],
            report: Err("x".into()),
            health: Err("x".into()),
        };
        let html = render(&s);
        assert!(html.contains("id=\"alarm-3\""));
        assert!(html.contains(
            "CONSISTENCY ALARM on metadata node 3: namespace hash at index 9 differs &lt;x&gt;"
        ));
    }
}
