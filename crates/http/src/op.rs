//! The WebHDFS operations tdfs serves: one table gives each op its name and
//! the HTTP method Hadoop assigns it (`GetOpParam`, `PutOpParam`,
//! `PostOpParam`, `DeleteOpParam`), so parsing, naming and routing agree.

use crate::error::WebError;

/// The operations tdfs serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    // GET
    Open,
    GetFileStatus,
    ListStatus,
    ListStatusBatch,
    GetContentSummary,
    GetFileChecksum,
    GetHomeDirectory,
    GetTrashRoot,
    GetServerDefaults,
    GetFileBlockLocations,
    GetBlockLocations,
    GetStatus,
    GetQuotaUsage,
    GetAclStatus,
    GetXAttrs,
    ListXAttrs,
    GetSnapshotDiff,
    GetSnapshotDiffListing,
    GetSnapshottableDirectoryList,
    GetSnapshotList,
    // PUT
    Create,
    Mkdirs,
    Rename,
    SetReplication,
    SetPermission,
    SetOwner,
    SetTimes,
    SetAcl,
    ModifyAclEntries,
    RemoveAclEntries,
    RemoveDefaultAcl,
    RemoveAcl,
    SetXAttr,
    RemoveXAttr,
    AllowSnapshot,
    DisallowSnapshot,
    CreateSnapshot,
    RenameSnapshot,
    SetQuota,
    SetQuotaByStorageType,
    // POST
    Append,
    Truncate,
    Concat,
    // DELETE
    Delete,
    DeleteSnapshot,
}

/// Every op with its name and method.
const OPS: &[(Op, &str, &str)] = &[
    (Op::Open, "OPEN", "GET"),
    (Op::GetFileStatus, "GETFILESTATUS", "GET"),
    (Op::ListStatus, "LISTSTATUS", "GET"),
    (Op::ListStatusBatch, "LISTSTATUS_BATCH", "GET"),
    (Op::GetContentSummary, "GETCONTENTSUMMARY", "GET"),
    (Op::GetFileChecksum, "GETFILECHECKSUM", "GET"),
    (Op::GetHomeDirectory, "GETHOMEDIRECTORY", "GET"),
    (Op::GetTrashRoot, "GETTRASHROOT", "GET"),
    (Op::GetServerDefaults, "GETSERVERDEFAULTS", "GET"),
    (Op::GetFileBlockLocations, "GETFILEBLOCKLOCATIONS", "GET"),
    (Op::GetBlockLocations, "GET_BLOCK_LOCATIONS", "GET"),
    (Op::GetStatus, "GETSTATUS", "GET"),
    (Op::GetQuotaUsage, "GETQUOTAUSAGE", "GET"),
    (Op::GetAclStatus, "GETACLSTATUS", "GET"),
    (Op::GetXAttrs, "GETXATTRS", "GET"),
    (Op::ListXAttrs, "LISTXATTRS", "GET"),
    (Op::GetSnapshotDiff, "GETSNAPSHOTDIFF", "GET"),
    (Op::GetSnapshotDiffListing, "GETSNAPSHOTDIFFLISTING", "GET"),
    (
        Op::GetSnapshottableDirectoryList,
        "GETSNAPSHOTTABLEDIRECTORYLIST",
        "GET",
    ),
    (Op::GetSnapshotList, "GETSNAPSHOTLIST", "GET"),
    (Op::Create, "CREATE", "PUT"),
    (Op::Mkdirs, "MKDIRS", "PUT"),
    (Op::Rename, "RENAME", "PUT"),
    (Op::SetReplication, "SETREPLICATION", "PUT"),
    (Op::SetPermission, "SETPERMISSION", "PUT"),
    (Op::SetOwner, "SETOWNER", "PUT"),
    (Op::SetTimes, "SETTIMES", "PUT"),
    (Op::SetAcl, "SETACL", "PUT"),
    (Op::ModifyAclEntries, "MODIFYACLENTRIES", "PUT"),
    (Op::RemoveAclEntries, "REMOVEACLENTRIES", "PUT"),
    (Op::RemoveDefaultAcl, "REMOVEDEFAULTACL", "PUT"),
    (Op::RemoveAcl, "REMOVEACL", "PUT"),
    (Op::SetXAttr, "SETXATTR", "PUT"),
    (Op::RemoveXAttr, "REMOVEXATTR", "PUT"),
    (Op::AllowSnapshot, "ALLOWSNAPSHOT", "PUT"),
    (Op::DisallowSnapshot, "DISALLOWSNAPSHOT", "PUT"),
    (Op::CreateSnapshot, "CREATESNAPSHOT", "PUT"),
    (Op::RenameSnapshot, "RENAMESNAPSHOT", "PUT"),
    (Op::SetQuota, "SETQUOTA", "PUT"),
    (Op::SetQuotaByStorageType, "SETQUOTABYSTORAGETYPE", "PUT"),
    (Op::Append, "APPEND", "POST"),
    (Op::Truncate, "TRUNCATE", "POST"),
    (Op::Concat, "CONCAT", "POST"),
    (Op::Delete, "DELETE", "DELETE"),
    (Op::DeleteSnapshot, "DELETESNAPSHOT", "DELETE"),
];

impl Op {
    /// The op for `name` under `method`, or Hadoop's 400 for an op that is
    /// unknown, not supported here, or sent with the wrong method.
    pub fn parse(method: &str, name: &str) -> Result<Op, WebError> {
        let up = name.to_ascii_uppercase();
        let Some(&(op, _, want)) = OPS.iter().find(|(_, n, _)| *n == up) else {
            return Err(WebError::illegal(format!(
                "Invalid value for webhdfs parameter \"op\": {name} is not supported by tdfs"
            )));
        };
        if want != method {
            return Err(WebError::illegal(format!(
                "Invalid value for webhdfs parameter \"op\": {up} is a {want} operation, not {method}"
            )));
        }
        Ok(op)
    }

    fn entry(self) -> &'static (Op, &'static str, &'static str) {
        OPS.iter()
            .find(|(o, _, _)| *o == self)
            .expect("every op is in the table")
    }

    /// The HTTP method Hadoop assigns to the op.
    pub fn method(self) -> &'static str {
        self.entry().2
    }

    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// The ops whose data moves in a second request to a datanode.
    pub fn is_data(self) -> bool {
        matches!(self, Op::Open | Op::Create | Op::Append)
    }

    /// The ops of quotas, snapshots, ACLs, xattrs, truncate and concat
    /// (`crate::features`).
    pub fn is_feature(self) -> bool {
        use Op::*;
        matches!(
            self,
            GetQuotaUsage
                | GetContentSummary
                | GetAclStatus
                | GetXAttrs
                | ListXAttrs
                | GetSnapshotDiff
                | GetSnapshotDiffListing
                | GetSnapshottableDirectoryList
                | GetSnapshotList
                | SetAcl
                | ModifyAclEntries
                | RemoveAclEntries
                | RemoveDefaultAcl
                | RemoveAcl
                | SetXAttr
                | RemoveXAttr
                | AllowSnapshot
                | DisallowSnapshot
                | CreateSnapshot
                | RenameSnapshot
                | SetQuota
                | SetQuotaByStorageType
                | Truncate
                | Concat
                | DeleteSnapshot
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_through_its_name() {
        for &(op, name, method) in OPS {
            assert_eq!(Op::parse(method, name).unwrap(), op);
            assert_eq!(Op::parse(method, &name.to_lowercase()).unwrap(), op);
            assert_eq!((op.name(), op.method()), (name, method));
        }
        assert!(Op::parse("GET", "DELETESNAPSHOT").is_err());
    }
}
