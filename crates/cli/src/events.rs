//! `tdfs events [--follow] [--json]`: the event streams of every metadata
//! node and datanode, merged by time. Without `--follow` it prints what the
//! nodes still hold and exits; with it, it keeps printing new events (and
//! picks up datanodes that register meanwhile) until interrupted.

use crate::opts::ClientOpts;
use anyhow::bail;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tdfs_client::MetaClient;
use tdfs_proto::event::Event;
use tdfs_proto::meta::{AdminRequest, AdminResponse, Request, Response};
use tokio::sync::mpsc;

/// How long one `--follow` call waits on a node for new events.
const FOLLOW_WAIT_MS: u32 = 10_000;

pub async fn run(args: Vec<String>) -> anyhow::Result<u8> {
    let o = ClientOpts::parse(args)?;
    let mut follow = false;
    for a in &o.rest {
        match a.as_str() {
            "--follow" | "-follow" | "-f" => follow = true,
            other => bail!("usage: tdfs events [--follow] [--json] (unknown argument {other})"),
        }
    }
    let c = std::sync::Arc::new(o.client()?);
    let json = o.json;
    let mut sources = sources(&c).await;
    let mut history = Vec::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for addr in &sources {
        match drain(&c, addr).await {
            Ok(evs) => {
                last.insert(addr.clone(), evs.last().map_or(0, |e| e.seq));
                history.extend(evs);
            }
            Err(e) => eprintln!("tdfs: events of {addr} unavailable: {e}"),
        }
    }
    history.sort_by(|a, b| (a.time_ms, &a.node, a.seq).cmp(&(b.time_ms, &b.node, b.seq)));
    for e in &history {
        print(e, json);
    }
    if !follow {
        return Ok(0);
    }
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    for addr in &sources {
        spawn_follower(&c, addr, last.get(addr).copied().unwrap_or(0), &tx);
    }
    let mut refresh = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            Some(e) = rx.recv() => print(&e, json),
            _ = refresh.tick() => {
                for addr in sources_new(&c, &sources).await {
                    spawn_follower(&c, &addr, 0, &tx);
                    sources.push(addr);
                }
            }
            _ = crate::daemon::wait_for_signal() => return Ok(0),
        }
    }
}

/// Every metadata node the client knows and every datanode the leader reports.
async fn sources(c: &MetaClient) -> Vec<String> {
    let mut out = c.config().meta.clone();
    out.extend(datanodes(c).await);
    out
}

async fn sources_new(c: &MetaClient, known: &[String]) -> Vec<String> {
    datanodes(c)
        .await
        .into_iter()
        .filter(|a| !known.contains(a))
        .collect()
}

async fn datanodes(c: &MetaClient) -> Vec<String> {
    match c.admin(AdminRequest::Report).await {
        Ok(AdminResponse::Report(r)) => r.datanodes.into_iter().map(|d| d.addr).collect(),
        Ok(_) => vec![],
        Err(e) => {
            eprintln!("tdfs: cannot list the datanodes: {e}");
            vec![]
        }
    }
}

/// One node's events still held, oldest first.
async fn drain(c: &MetaClient, addr: &str) -> anyhow::Result<Vec<Event>> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.seq);
        let batch = fetch(c, addr, after, 0).await?;
        if batch.is_empty() {
            return Ok(out);
        }
        out.extend(batch);
    }
}

async fn fetch(c: &MetaClient, addr: &str, after: u64, wait_ms: u32) -> anyhow::Result<Vec<Event>> {
    match c
        .call_node(addr, Request::Events { after, wait_ms })
        .await?
    {
        Response::Events(v) => Ok(v),
        other => bail!("unexpected reply {other:?}"),
    }
}

fn spawn_follower(
    c: &std::sync::Arc<MetaClient>,
    addr: &str,
    after: u64,
    tx: &mpsc::Sender<Event>,
) {
    let (c, addr, tx) = (c.clone(), addr.to_string(), tx.clone());
    tokio::spawn(async move {
        let mut after = after;
        let mut pause = Duration::from_millis(200);
        loop {
            match fetch(&c, &addr, after, FOLLOW_WAIT_MS).await {
                Ok(batch) => {
                    pause = Duration::from_millis(200);
                    for e in batch {
                        after = e.seq;
                        if tx.send(e).await.is_err() {
                            return;
                        }
                    }
                }
                // A node down for a while: retry with backoff, quietly.
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
}

/// The contract's JSON shape: `seq`, `time_ms`, `node`, `type`, then the
/// event's own fields (`datanode`, `block`, ...).
pub fn to_json(e: &Event) -> Value {
    let mut doc =
        json!({"seq": e.seq, "time_ms": e.time_ms, "node": e.node, "type": e.kind.name()});
    // Serde writes a variant as {"Name": {fields}} (or "Name" with none).
    if let Ok(Value::Object(outer)) = serde_json::to_value(&e.kind) {
        if let Some(Value::Object(fields)) = outer.into_iter().next().map(|(_, v)| v) {
            for (k, v) in fields {
                doc[k.as_str()] = v;
            }
        }
    }
    doc
}

fn print(e: &Event, json: bool) {
    let doc = to_json(e);
    if json {
        println!("{doc}");
        return;
    }
    let mut fields = String::new();
    if let Value::Object(m) = &doc {
        for (k, v) in m {
            if !matches!(k.as_str(), "seq" | "time_ms" | "node" | "type") {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                fields.push_str(&format!(" {k}={v}"));
            }
        }
    }
    println!(
        "{}.{:03} {} {}{fields}",
        crate::fmt::date_seconds(e.time_ms),
        e.time_ms % 1000,
        e.node,
        e.kind.name()
    );
}
