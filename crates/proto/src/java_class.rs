//! The fully qualified Java class of each Hadoop exception name that
//! [`FsError::hadoop_exception`](crate::FsError::hadoop_exception) gives:
//! one table for every front end (WebHDFS's `javaClassName`, HDFS IPC's
//! `exceptionClassName`), so Hadoop's client unwraps the same exception
//! whichever way it came.

/// `java.io.IOException` for a name the table does not know.
pub fn java_class(exception: &str) -> &'static str {
    match exception {
        "FileNotFoundException" => "java.io.FileNotFoundException",
        "FileAlreadyExistsException" => "org.apache.hadoop.fs.FileAlreadyExistsException",
        "ParentNotDirectoryException" => "org.apache.hadoop.fs.ParentNotDirectoryException",
        "PathIsNotEmptyDirectoryException" => {
            "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"
        }
        "PathIsNotDirectoryException" => "org.apache.hadoop.fs.PathIsNotDirectoryException",
        "AccessControlException" => "org.apache.hadoop.security.AccessControlException",
        "InvalidPathException" => "org.apache.hadoop.fs.InvalidPathException",
        "IllegalArgumentException" => "java.lang.IllegalArgumentException",
        "HadoopIllegalArgumentException" => "org.apache.hadoop.HadoopIllegalArgumentException",
        "UnsupportedOperationException" => "java.lang.UnsupportedOperationException",
        "AlreadyBeingCreatedException" => {
            "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException"
        }
        "LeaseExpiredException" => "org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException",
        "StandbyException" => "org.apache.hadoop.ipc.StandbyException",
        "RetriableException" => "org.apache.hadoop.ipc.RetriableException",
        "SafeModeException" => "org.apache.hadoop.hdfs.server.namenode.SafeModeException",
        "ChecksumException" => "org.apache.hadoop.fs.ChecksumException",
        "DiskQuotaExceededException" => "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException",
        "QuotaExceededException" => "org.apache.hadoop.hdfs.protocol.QuotaExceededException",
        "NSQuotaExceededException" => "org.apache.hadoop.hdfs.protocol.NSQuotaExceededException",
        "DSQuotaExceededException" => "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException",
        "QuotaByStorageTypeExceededException" => {
            "org.apache.hadoop.hdfs.protocol.QuotaByStorageTypeExceededException"
        }
        "SnapshotException" => "org.apache.hadoop.hdfs.protocol.SnapshotException",
        "SnapshotAccessControlException" => {
            "org.apache.hadoop.hdfs.protocol.SnapshotAccessControlException"
        }
        "AclException" => "org.apache.hadoop.hdfs.protocol.AclException",
        "RecoveryInProgressException" => {
            "org.apache.hadoop.hdfs.protocol.RecoveryInProgressException"
        }
        "InvalidToken" => "org.apache.hadoop.security.token.SecretManager$InvalidToken",
        _ => "java.io.IOException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_ends_with_its_name() {
        for n in [
            "NSQuotaExceededException",
            "DSQuotaExceededException",
            "SnapshotException",
            "AclException",
            "FileNotFoundException",
            "RecoveryInProgressException",
        ] {
            assert!(java_class(n).ends_with(&format!(".{n}")), "{n}");
        }
        assert_eq!(java_class("Nope"), "java.io.IOException");
    }
}
