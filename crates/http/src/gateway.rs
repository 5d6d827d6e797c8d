//! The metadata side of WebHDFS: namespace operations answered here, and
//! the first step of OPEN/CREATE/APPEND, a 307 to a datanode's HTTP address
//! where the second request moves the data.

use crate::clients::Clients;
use crate::error::WebError;
use crate::json;
use crate::query::{percent_encode_path, Op, WebRequest};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tdfs_client::MetaClient;
use tdfs_proto::meta::{AdminRequest, AdminResponse, MetaRequest, MetaResponse};
use tdfs_proto::FsError;

/// Entries per LISTSTATUS_BATCH page (Hadoop's `dfs.ls.limit` default).
const BATCH: u32 = 1000;

/// How long the list of datanode HTTP addresses is reused.
const DATANODES_TTL: Duration = Duration::from_secs(1);

/// What the gateway needs besides clients: where it and the datanodes are.
pub struct Gateway {
    pub clients: Clients,
    /// This node's own HTTP address: the target of a redirect when no
    /// datanode serves HTTP (the gateway then moves the data, as HttpFS).
    pub self_http: String,
    /// Live datanodes' HTTP addresses, refreshed at most every second.
    datanodes: Mutex<(Option<Instant>, Vec<String>)>,
}

impl Gateway {
    pub fn new(clients: Clients, self_http: String) -> Self {
        Gateway {
            clients,
            self_http,
            datanodes: Mutex::new((None, Vec::new())),
        }
    }

    /// Answers a namespace operation, or redirects a data operation.
    pub async fn handle(&self, req: WebRequest) -> Result<Response, WebError> {
        let c = self.clients.for_user(req.params.user())?;
        let user = c.config().user.clone();
        let p = &req.params;
        let path = req.path.as_str();
        let r = match req.op {
            Op::Open | Op::Create | Op::Append => return self.redirect(&c, &req).await,
            Op::GetFileStatus => {
                let st = c.stat(path).await?;
                json::ok(&serde_json::json!({"FileStatus": json::file_status(&st, "")}))
            }
            Op::ListStatus => {
                let st = c.stat(path).await?;
                if st.is_dir() {
                    json::ok(&json::file_statuses(&c.list(path).await?))
                } else {
                    let one = json::file_status(&st, "");
                    json::ok(&serde_json::json!({"FileStatuses": {"FileStatus": [one]}}))
                }
            }
            Op::ListStatusBatch => {
                let op = MetaRequest::ListStatus {
                    path: path.to_string(),
                    start_after: p.get("startafter").map(str::to_string),
                    limit: BATCH,
                };
                match c.meta(op).await? {
                    MetaResponse::Listing { entries, remaining } => {
                        json::ok(&json::directory_listing(&entries, remaining))
                    }
                    other => return Err(unexpected(other)),
                }
            }
            Op::GetContentSummary => {
                json::ok(&json::content_summary(&c.content_summary(path).await?))
            }
            Op::GetFileChecksum => json::ok(&json::file_checksum(&checksum(&c, path).await?)),
            Op::GetHomeDirectory => json::ok(&json::path(&format!("/user/{user}"))),
            Op::GetTrashRoot => json::ok(&json::path(&format!("/user/{user}/.Trash"))),
            Op::Mkdirs => {
                let op = MetaRequest::Mkdirs {
                    path: path.to_string(),
                    mode: p.permission()?,
                    parents: true,
                };
                c.meta(op).await?;
                json::ok(&json::boolean(true))
            }
            Op::Rename => {
                let dst = p
                    .get("destination")
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| {
                        WebError::illegal("Missing webhdfs parameter \"destination\"")
                    })?;
                let op = MetaRequest::Rename {
                    src: path.to_string(),
                    dst: dst.to_string(),
                    into_dir: true,
                };
                // Hadoop's rename answers false, not an exception, when the
                // source is missing or the destination is taken.
                match c.meta(op).await {
                    Ok(_) => json::ok(&json::boolean(true)),
                    Err(FsError::FileNotFound(_) | FsError::AlreadyExists(_)) => {
                        json::ok(&json::boolean(false))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Op::Delete => {
                let op = MetaRequest::Delete {
                    path: path.to_string(),
                    recursive: p.bool("recursive", false)?,
                };
                match c.meta(op).await {
                    Ok(_) => json::ok(&json::boolean(true)),
                    Err(FsError::FileNotFound(_)) => json::ok(&json::boolean(false)),
                    Err(e) => return Err(e.into()),
                }
            }
            Op::SetReplication => {
                let op = MetaRequest::SetReplication {
                    path: path.to_string(),
                    replication: p.replication()?.unwrap_or(3),
                };
                match c.meta(op).await {
                    Ok(_) => json::ok(&json::boolean(true)),
                    Err(FsError::IsADirectory(_)) => json::ok(&json::boolean(false)),
                    Err(e) => return Err(e.into()),
                }
            }
            Op::SetPermission => {
                let mode = p.permission()?.unwrap_or(0o755);
                c.meta(MetaRequest::SetPermission {
                    path: path.to_string(),
                    mode,
                })
                .await?;
                empty_ok()
            }
            Op::SetOwner => {
                let owner = p.get("owner").filter(|s| !s.is_empty()).map(str::to_string);
                let group = p.get("group").filter(|s| !s.is_empty()).map(str::to_string);
                if owner.is_none() && group.is_none() {
                    return Err(WebError::illegal("Both owner and group are empty."));
                }
                c.meta(MetaRequest::SetOwner {
                    path: path.to_string(),
                    owner,
                    group,
                })
                .await?;
                empty_ok()
            }
            Op::SetTimes => {
                c.meta(MetaRequest::SetTimes {
                    path: path.to_string(),
                    mtime: p.time("modificationtime")?,
                    atime: p.time("accesstime")?,
                })
                .await?;
                empty_ok()
            }
            Op::Truncate => {
                return Err(WebError::unsupported(
                    "TRUNCATE is not supported by tdfs: files only grow (append)",
                ))
            }
        };
        Ok(r)
    }

    /// Step one of a data operation: 307 to a datanode (one holding the
    /// first block read, for OPEN), or `{"Location": ...}` with `noredirect`.
    async fn redirect(&self, c: &MetaClient, req: &WebRequest) -> Result<Response, WebError> {
        // Parameters are checked here, as Hadoop's namenode does, so a bad
        // one fails before any data moves.
        let p = &req.params;
        p.bool("overwrite", false)?;
        p.bool("noredirect", false)?;
        p.permission()?;
        p.replication()?;
        for n in ["blocksize", "offset", "length", "buffersize"] {
            p.num(n, 10)?;
        }
        let target = match req.op {
            Op::Open => self.open_target(c, req).await?,
            Op::Append => {
                let st = c.stat(&req.path).await?;
                if st.is_dir() {
                    return Err(
                        FsError::FileNotFound(format!("{} is a directory", req.path)).into(),
                    );
                }
                self.any_datanode(c).await
            }
            _ => self.any_datanode(c).await,
        };
        let target = target.unwrap_or_else(|| self.self_http.clone());
        let rpc = self
            .clients
            .meta_addrs()
            .first()
            .cloned()
            .unwrap_or_default();
        let url = format!(
            "http://{target}{}{}?{}&namenoderpcaddress={}",
            crate::query::PREFIX,
            percent_encode_path(&req.path),
            req.params.to_query(req.op),
            percent_encode_path(&rpc)
        );
        if req.params.bool("noredirect", false)? {
            return Ok(json::ok(&serde_json::json!({ "Location": url })));
        }
        let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
        let v = HeaderValue::from_str(&url).map_err(|e| WebError::illegal(e.to_string()))?;
        r.headers_mut().insert(header::LOCATION, v);
        Ok(r)
    }

    async fn open_target(
        &self,
        c: &MetaClient,
        req: &WebRequest,
    ) -> Result<Option<String>, WebError> {
        let st = c.stat(&req.path).await?;
        if st.is_dir() {
            return Err(FsError::FileNotFound(format!("{} is a directory", req.path)).into());
        }
        let offset = req.params.num("offset", 10)?.unwrap_or(0);
        if offset < st.length {
            let lbs = c.block_locations(&req.path, offset, 1).await?;
            let first = lbs.blocks.first().into_iter().flat_map(|b| &b.locations);
            if let Some(h) = first.filter_map(|l| l.http.clone()).next() {
                return Ok(Some(h));
            }
        }
        Ok(self.any_datanode(c).await)
    }

    /// A random live datanode that serves HTTP, if any.
    async fn any_datanode(&self, c: &MetaClient) -> Option<String> {
        {
            let g = self.datanodes.lock().unwrap_or_else(|p| p.into_inner());
            if g.0.is_some_and(|t| t.elapsed() < DATANODES_TTL) {
                return g.1.choose(&mut rand::thread_rng()).cloned();
            }
        }
        let list: Vec<String> = match c.admin(AdminRequest::Report).await {
            Ok(AdminResponse::Report(r)) => r
                .datanodes
                .into_iter()
                .filter(|d| d.state == "live" && d.admin_state == "normal")
                .filter_map(|d| d.http)
                .collect(),
            _ => Vec::new(),
        };
        let pick = list.choose(&mut rand::thread_rng()).cloned();
        *self.datanodes.lock().unwrap_or_else(|p| p.into_inner()) = (Some(Instant::now()), list);
        pick
    }
}

fn empty_ok() -> Response {
    let mut r = StatusCode::OK.into_response();
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn unexpected(r: MetaResponse) -> WebError {
    FsError::Internal(format!("unexpected reply {r:?}")).into()
}

/// SHA-256 over the blocks' digests, as `tdfs dfs -checksum`.
async fn checksum(c: &MetaClient, path: &str) -> Result<[u8; 32], WebError> {
    let st = c.stat(path).await?;
    if st.is_dir() {
        return Err(FsError::FileNotFound(format!("{path} is a directory")).into());
    }
    let lbs = c.block_locations(path, 0, st.length.max(1)).await?;
    let mut h = Sha256::new();
    for b in &lbs.blocks {
        let d = b.block.sha256.ok_or_else(|| {
            WebError::from(FsError::Unavailable(format!(
                "block {} of {path} is not complete",
                b.block.id
            )))
        })?;
        h.update(d);
    }
    Ok(h.finalize().into())
}
