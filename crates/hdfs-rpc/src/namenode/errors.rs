//! tdfs errors as Hadoop's client expects them: the fully qualified Java
//! exception class (which `RemoteException.unwrapRemoteException` turns
//! back into the exception `DistributedFileSystem` declares) and the
//! message.

use crate::ipc::Outcome;
use crate::proto::common::rpc_response_header_proto::RpcErrorCodeProto;
use tdfs_proto::FsError;

pub const STANDBY: &str = "org.apache.hadoop.ipc.StandbyException";
pub const NO_SUCH_METHOD: &str = "org.apache.hadoop.ipc.RpcNoSuchMethodException";
pub const NO_SUCH_PROTOCOL: &str = "org.apache.hadoop.ipc.RpcNoSuchProtocolException";

/// The Java class of `e`, from the Hadoop name `FsError` already gives
/// each variant and the table WebHDFS uses too, made precise where HDFS's
/// RPC throws a closer class.
pub fn java_class(e: &FsError) -> &'static str {
    match e {
        FsError::LeaseExpired(_) => "org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException",
        FsError::InvalidArgument(_) => "org.apache.hadoop.HadoopIllegalArgumentException",
        FsError::Unsupported(_) => "java.lang.UnsupportedOperationException",
        FsError::NotLeader { .. } => STANDBY,
        _ => tdfs_proto::java_class::java_class(e.hadoop_exception()),
    }
}

/// A failed call: the connection stays open.
pub fn failure(class: &str, message: impl Into<String>, code: RpcErrorCodeProto) -> Outcome {
    Outcome::Failure {
        fatal: false,
        class: class.to_string(),
        message: message.into(),
        code,
    }
}

/// The reply to a call that failed with `e`.
pub fn from_fs(e: &FsError) -> Outcome {
    let message = match e {
        // A standby's message as Hadoop words it (clients log it).
        FsError::NotLeader { .. } => {
            format!("Operation category is not supported in state standby ({e})")
        }
        _ => e.to_string(),
    };
    failure(java_class(e), message, RpcErrorCodeProto::ErrorApplication)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_hadoop_clients_branch_on() {
        let cases = [
            (
                FsError::FileNotFound("/a".into()),
                "java.io.FileNotFoundException",
            ),
            (
                FsError::AlreadyExists("/a".into()),
                "org.apache.hadoop.fs.FileAlreadyExistsException",
            ),
            (
                FsError::NotADirectory("/a".into()),
                "org.apache.hadoop.fs.ParentNotDirectoryException",
            ),
            (
                FsError::DirectoryNotEmpty("/a".into()),
                "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException",
            ),
            (
                FsError::PermissionDenied {
                    user: "u".into(),
                    access: "WRITE".into(),
                    path: "/".into(),
                },
                "org.apache.hadoop.security.AccessControlException",
            ),
            (FsError::NotLeader { leader: None }, STANDBY),
            (
                FsError::Unavailable("x".into()),
                "org.apache.hadoop.ipc.RetriableException",
            ),
            (
                FsError::LeaseConflict {
                    path: "/a".into(),
                    holder: "h".into(),
                },
                "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException",
            ),
            (
                FsError::LeaseExpired("/a".into()),
                "org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException",
            ),
            (
                FsError::Unsupported("x".into()),
                "java.lang.UnsupportedOperationException",
            ),
            (FsError::Internal("x".into()), "java.io.IOException"),
            (
                FsError::Snapshot("x".into()),
                "org.apache.hadoop.hdfs.protocol.SnapshotException",
            ),
            (
                FsError::Acl("x".into()),
                "org.apache.hadoop.hdfs.protocol.AclException",
            ),
            (
                FsError::QuotaExceeded {
                    kind: tdfs_proto::error::QuotaKind::Namespace,
                    path: "/q".into(),
                    quota: 1,
                    usage: 2,
                },
                "org.apache.hadoop.hdfs.protocol.NSQuotaExceededException",
            ),
            (
                FsError::QuotaExceeded {
                    kind: tdfs_proto::error::QuotaKind::Space,
                    path: "/q".into(),
                    quota: 1,
                    usage: 2,
                },
                "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException",
            ),
        ];
        for (e, class) in cases {
            assert_eq!(java_class(&e), class, "{e:?}");
        }
    }
}
