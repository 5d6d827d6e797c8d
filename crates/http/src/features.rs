//! The WebHDFS operations of the namespace features: quotas, snapshots,
//! ACLs, extended attributes, truncate and concat. Each is one call of the
//! tdfs client (the same requests the shell and the HDFS front end make);
//! parameters are read and checked as `NamenodeWebHdfsMethods` does.

use crate::error::WebError;
use crate::feature_json as fj;
use crate::gateway::empty_ok;
use crate::json;
use crate::query::{Op, Params, WebRequest};
use axum::response::Response;
use tdfs_client::MetaClient;
use tdfs_proto::acl::{parse_spec, AclChange};
use tdfs_proto::quota::QuotaChange;
use tdfs_proto::snapshot::listing::DEFAULT_LIMIT as LIMIT;
use tdfs_proto::xattr::{decode_value, Encoding, XAttrFlags};
use tdfs_proto::FsError;

/// Answers a feature op (`Op::is_feature`).
pub async fn handle(c: &MetaClient, req: &WebRequest) -> Result<Response, WebError> {
    match req.op.method() {
        "GET" => read(c, req).await.map(|v| json::ok(&v)),
        _ => write(c, req).await,
    }
}

/// The feature reads; each answers JSON.
async fn read(c: &MetaClient, req: &WebRequest) -> Result<serde_json::Value, WebError> {
    let (p, path) = (&req.params, req.path.as_str());
    Ok(match req.op {
        Op::GetQuotaUsage => fj::quota_usage(&c.quota_usage(path).await?),
        Op::GetContentSummary => {
            let s = c.content_summary(path).await?;
            fj::content_summary(&s, &c.quota_usage(path).await?)
        }
        Op::GetAclStatus => fj::acl_status(&c.acl_status(path).await?),
        Op::GetXAttrs => {
            let enc = Encoding::parse(p.required("encoding", req.op)?)?;
            let names: Vec<String> = p
                .all("xattr.name")
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect();
            fj::xattrs(&c.xattrs(path, &names).await?, enc)
        }
        Op::ListXAttrs => fj::xattr_names(&c.list_xattrs(path).await?),
        Op::GetSnapshotDiff => {
            let from = p.get("oldsnapshotname").unwrap_or("");
            let to = p.get("snapshotname").unwrap_or("");
            fj::snapshot_diff(&c.snapshot_diff(path, from, to).await?)
        }
        Op::GetSnapshotDiffListing => {
            let from = p.get("oldsnapshotname").unwrap_or("");
            let to = p.get("snapshotname").unwrap_or("");
            let index = snapshot_diff_index(p)?;
            let page = c
                .snapshot_diff(path, from, to)
                .await?
                .listing_page(index, LIMIT);
            fj::snapshot_diff_listing(&page)
        }
        Op::GetSnapshottableDirectoryList => fj::snapshottable_dirs(&c.snapshottable_dirs().await?),
        Op::GetSnapshotList => {
            let snaps = c.snapshots(path).await?;
            fj::snapshot_list(path, &c.stat(path).await?, &snaps)
        }
        other => return Err(not_feature(other)),
    })
}

/// The feature writes (PUT, POST, DELETE).
async fn write(c: &MetaClient, req: &WebRequest) -> Result<Response, WebError> {
    let (p, path, op) = (&req.params, req.path.as_str(), req.op);
    match op {
        Op::SetAcl | Op::ModifyAclEntries | Op::RemoveAclEntries => {
            let spec = p.required("aclspec", op)?;
            let entries = parse_spec(spec, op != Op::RemoveAclEntries)
                .map_err(|e| bad_param("aclspec", spec, e))?;
            let change = match op {
                Op::SetAcl => AclChange::Set(entries),
                Op::ModifyAclEntries => AclChange::Modify(entries),
                _ => AclChange::Remove(entries),
            };
            c.change_acl(path, change).await?;
        }
        Op::RemoveDefaultAcl => c.change_acl(path, AclChange::RemoveDefault).await?,
        Op::RemoveAcl => c.change_acl(path, AclChange::RemoveAll).await?,
        Op::SetXAttr => set_xattr(c, req).await?,
        Op::RemoveXAttr => c.remove_xattr(path, p.required("xattr.name", op)?).await?,
        Op::AllowSnapshot => c.allow_snapshot(path).await?,
        Op::DisallowSnapshot => c.disallow_snapshot(path).await?,
        Op::CreateSnapshot => {
            let name = p.get("snapshotname").filter(|n| !n.is_empty());
            let made = c.create_snapshot(path, name).await?;
            return Ok(json::ok(&json::path(&made)));
        }
        Op::RenameSnapshot => {
            let old = p.required("oldsnapshotname", op)?;
            let new = p.required("snapshotname", op)?;
            c.rename_snapshot(path, old, new).await?;
        }
        Op::DeleteSnapshot => {
            c.delete_snapshot(path, p.required("snapshotname", op)?)
                .await?
        }
        Op::SetQuota | Op::SetQuotaByStorageType => set_quota(c, req).await?,
        Op::Truncate => {
            let len = p.required("newlength", op)?;
            let len = len
                .trim()
                .parse::<u64>()
                .map_err(|_| WebError::illegal(invalid("newlength", len)))?;
            let done = c.truncate(path, len).await?;
            return Ok(json::ok(&json::boolean(done)));
        }
        Op::Concat => {
            let sources: Vec<String> = p
                .required("sources", op)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            c.concat(path, &sources).await?;
        }
        other => return Err(not_feature(other)),
    }
    Ok(empty_ok())
}

/// SETXATTR: `xattr.name` and `flag` required, `xattr.value` in Hadoop's
/// codec (a value that does not decode is an IOException there, as here).
async fn set_xattr(c: &MetaClient, req: &WebRequest) -> Result<(), WebError> {
    let p = &req.params;
    let name = p.required("xattr.name", req.op)?;
    let flag = p.required("flag", req.op)?;
    let flags = XAttrFlags::parse(flag).map_err(|e| bad_param("flag", flag, e))?;
    let value = match p.get("xattr.value") {
        Some(v) => decode_value(v).map_err(|e| WebError {
            status: 403,
            exception: "IOException",
            message: e.to_string(),
        })?,
        None => Vec::new(),
    };
    c.set_xattr(&req.path, name, &value, flags).await?;
    Ok(())
}

/// SETQUOTA and SETQUOTABYSTORAGETYPE, with Hadoop's sentinels: −1 clears
/// a quota (`QUOTA_RESET`), `Long.MAX_VALUE` leaves it (`QUOTA_DONT_SET`).
async fn set_quota(c: &MetaClient, req: &WebRequest) -> Result<(), WebError> {
    let p = &req.params;
    let space = quota_param(p, "storagespacequota", req.op)?;
    if req.op == Op::SetQuotaByStorageType {
        let t = p.required("storagetype", req.op)?;
        c.set_type_quota(&req.path, t, space).await?;
    } else {
        let ns = quota_param(p, "namespacequota", req.op)?;
        c.set_quota(&req.path, ns, space).await?;
    }
    Ok(())
}

fn quota_param(p: &Params, name: &str, op: Op) -> Result<QuotaChange, WebError> {
    let v = p.required(name, op)?;
    match v.trim().parse::<i64>() {
        Ok(-1) => Ok(QuotaChange::Clear),
        Ok(i64::MAX) => Ok(QuotaChange::Keep),
        Ok(n) if n >= 0 => Ok(QuotaChange::Set(n as u64)),
        _ => Err(WebError::illegal(invalid(name, v))),
    }
}

/// GETSNAPSHOTDIFFLISTING's cursor: `snapshotdiffindex` (Hadoop's
/// default -1, the first page); `snapshotdiffstartpath` is only echoed.
fn snapshot_diff_index(p: &Params) -> Result<i32, WebError> {
    match p.get("snapshotdiffindex") {
        None | Some("") => Ok(-1),
        Some(v) => v
            .trim()
            .parse::<i32>()
            .map_err(|_| WebError::illegal(invalid("snapshotdiffindex", v))),
    }
}

fn invalid(name: &str, v: &str) -> String {
    format!("Invalid value for webhdfs parameter \"{name}\": Failed to parse \"{v}\"")
}

/// A parameter the namespace's parser refused, worded as Hadoop's
/// parameter check; other refusals (too many ACL entries: AclException)
/// stay as the namespace gave them.
fn bad_param(name: &str, v: &str, e: FsError) -> WebError {
    match e {
        FsError::InvalidArgument(why) => WebError::illegal(format!(
            "Invalid value for webhdfs parameter \"{name}\": {v}: {why}"
        )),
        other => other.into(),
    }
}

fn not_feature(op: Op) -> WebError {
    WebError::illegal(format!("{} is not a feature operation", op.name()))
}
