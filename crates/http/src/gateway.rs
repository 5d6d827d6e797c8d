//! The metadata side of WebHDFS: namespace operations answered here, and
//! the first step of OPEN/CREATE/APPEND, a 307 to a datanode's HTTP address
//! where the second request moves the data.

use crate::blocks::{self, ServerDefaults};
use crate::clients::Clients;
use crate::error::WebError;
use crate::json;
use crate::query::{percent_encode_path, Op, WebRequest};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::seq::SliceRandom;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tdfs_client::{file_checksum, MetaClient};
use tdfs_proto::meta::{AdminRequest, AdminResponse, ClusterReport, MetaRequest, MetaResponse};
use tdfs_proto::perm::AS_GIVEN;
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
    /// Answered to GETSERVERDEFAULTS.
    pub defaults: ServerDefaults,
    /// Live datanodes' HTTP addresses, refreshed at most every second.
    datanodes: Mutex<(Option<Instant>, Vec<String>)>,
}

impl Gateway {
    pub fn new(clients: Clients, self_http: String, defaults: ServerDefaults) -> Self {
        Gateway {
            clients,
            self_http,
            defaults,
            datanodes: Mutex::new((None, Vec::new())),
        }
    }

    /// Answers a namespace operation, or redirects a data operation.
    pub async fn handle(&self, req: WebRequest) -> Result<Response, WebError> {
        let c = self.clients.for_user(req.params.user())?;
        match req.op {
            Op::Open | Op::Create | Op::Append => self.redirect(&c, &req).await,
            Op::Mkdirs
            | Op::Rename
            | Op::Delete
            | Op::SetReplication
            | Op::SetPermission
            | Op::SetOwner
            | Op::SetTimes => write_op(&c, &req).await,
            op if op.is_feature() => crate::features::handle(&c, &req).await,
            _ => self.read_op(&c, &req).await,
        }
    }

    /// The GET operations answered here.
    async fn read_op(&self, c: &MetaClient, req: &WebRequest) -> Result<Response, WebError> {
        let user = &c.config().user;
        let (p, path) = (&req.params, req.path.as_str());
        let v = match req.op {
            Op::GetFileStatus => {
                let st = c.stat(path).await?;
                serde_json::json!({"FileStatus": json::file_status(&st, "")})
            }
            Op::ListStatus => {
                let st = c.stat(path).await?;
                if st.is_dir() {
                    json::file_statuses(&c.list(path).await?)
                } else {
                    let one = json::file_status(&st, "");
                    serde_json::json!({"FileStatuses": {"FileStatus": [one]}})
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
                        json::directory_listing(&entries, remaining)
                    }
                    other => return Err(unexpected(other)),
                }
            }
            Op::GetFileChecksum => {
                let mode = blocks::ChecksumMode::parse(p.get("checksumcombinemode"))?;
                blocks::file_checksum(&file_checksum(c, path).await?, mode)
            }
            Op::GetFileBlockLocations | Op::GetBlockLocations => {
                let offset = p.num("offset", 10)?.unwrap_or(0);
                let len = p.num("length", 10)?.unwrap_or(u64::MAX);
                let lbs = c.block_locations(path, offset, len).await?;
                if req.op == Op::GetFileBlockLocations {
                    blocks::block_locations(&lbs)
                } else {
                    blocks::located_blocks(&lbs)
                }
            }
            Op::GetServerDefaults => blocks::server_defaults(&self.defaults),
            Op::GetStatus => {
                let r = report(c).await?;
                let dns = r.datanodes.iter().filter(|d| d.state != "dead");
                let (cap, used, rem) = dns.fold((0, 0, 0), |(a, b, c), d| {
                    (a + d.capacity, b + d.used, c + d.remaining)
                });
                blocks::fs_status(cap, used, rem)
            }
            Op::GetHomeDirectory => json::path(&tdfs_proto::trash::home(user)),
            Op::GetTrashRoot => json::path(&tdfs_proto::trash::trash_root(user)),
            other => {
                return Err(WebError::illegal(format!(
                    "{} is not a namespace read",
                    other.name()
                )))
            }
        };
        Ok(json::ok(&v))
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
        let list: Vec<String> = match report(c).await {
            Ok(r) => r
                .datanodes
                .into_iter()
                .filter(|d| d.state == "live" && d.admin_state == "normal")
                .filter_map(|d| d.http)
                .collect(),
            Err(_) => Vec::new(),
        };
        let pick = list.choose(&mut rand::thread_rng()).cloned();
        *self.datanodes.lock().unwrap_or_else(|p| p.into_inner()) = (Some(Instant::now()), list);
        pick
    }
}

async fn report(c: &MetaClient) -> Result<ClusterReport, WebError> {
    match c.admin(AdminRequest::Report).await? {
        AdminResponse::Report(r) => Ok(r),
        other => Err(FsError::Internal(format!("unexpected reply {other:?}")).into()),
    }
}

/// The PUT and DELETE namespace operations.
async fn write_op(c: &MetaClient, req: &WebRequest) -> Result<Response, WebError> {
    let (p, path) = (&req.params, req.path.clone());
    let op = match req.op {
        // Hadoop's clients send the mode with their umask applied: it is
        // final (HDFS's namenode applies it as given).
        Op::Mkdirs => MetaRequest::Mkdirs {
            path,
            mode: p.permission()?.map(|m| m | AS_GIVEN),
            parents: true,
        },
        Op::Rename => {
            let dst = p
                .get("destination")
                .filter(|d| !d.is_empty())
                .ok_or_else(|| WebError::illegal("Missing webhdfs parameter \"destination\""))?;
            MetaRequest::Rename {
                src: path,
                dst: dst.to_string(),
                into_dir: true,
            }
        }
        Op::Delete => MetaRequest::Delete {
            path,
            recursive: p.bool("recursive", false)?,
        },
        Op::SetReplication => MetaRequest::SetReplication {
            path,
            replication: p.replication()?.unwrap_or(3),
        },
        Op::SetPermission => MetaRequest::SetPermission {
            path,
            mode: p.permission()?.unwrap_or(0o755),
        },
        Op::SetOwner => {
            let owner = p.get("owner").filter(|s| !s.is_empty()).map(str::to_string);
            let group = p.get("group").filter(|s| !s.is_empty()).map(str::to_string);
            if owner.is_none() && group.is_none() {
                return Err(WebError::illegal("Both owner and group are empty."));
            }
            MetaRequest::SetOwner { path, owner, group }
        }
        Op::SetTimes => MetaRequest::SetTimes {
            path,
            mtime: p.time("modificationtime")?,
            atime: p.time("accesstime")?,
        },
        other => {
            return Err(WebError::illegal(format!(
                "{} is not a namespace write",
                other.name()
            )))
        }
    };
    let boolean = matches!(
        req.op,
        Op::Mkdirs | Op::Rename | Op::Delete | Op::SetReplication
    );
    match (c.meta(op).await, req.op) {
        // The namespace answers some of these with its own verdict
        // (setReplication of a directory: false).
        (Ok(MetaResponse::Bool(b)), _) if boolean => Ok(json::ok(&json::boolean(b))),
        (Ok(_), _) if boolean => Ok(json::ok(&json::boolean(true))),
        (Ok(_), _) => Ok(empty_ok()),
        // Hadoop answers false, not an exception: rename when the source is
        // missing or the target taken, delete of nothing, setReplication
        // of a directory.
        (Err(FsError::FileNotFound(_) | FsError::AlreadyExists(_)), Op::Rename)
        | (Err(FsError::FileNotFound(_)), Op::Delete)
        | (Err(FsError::IsADirectory(_)), Op::SetReplication) => {
            Ok(json::ok(&json::boolean(false)))
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// 200 with an empty body: the PUT ops that answer nothing.
pub(crate) fn empty_ok() -> Response {
    let mut r = StatusCode::OK.into_response();
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn unexpected(r: MetaResponse) -> WebError {
    FsError::Internal(format!("unexpected reply {r:?}")).into()
}
