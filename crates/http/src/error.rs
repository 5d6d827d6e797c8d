//! Errors as WebHDFS reports them: `{"RemoteException": {...}}` with the
//! Hadoop exception name, its Java class and Hadoop's status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tdfs_proto::FsError;

/// An error answered to a WebHDFS caller.
#[derive(Clone, Debug)]
pub struct WebError {
    pub status: u16,
    /// Hadoop's short exception name (`FileNotFoundException`).
    pub exception: &'static str,
    pub message: String,
}

impl WebError {
    /// A 400 IllegalArgumentException (bad parameter, unknown op).
    pub fn illegal(msg: impl Into<String>) -> Self {
        WebError {
            status: 400,
            exception: "IllegalArgumentException",
            message: msg.into(),
        }
    }

    pub fn unsupported(msg: impl Into<String>) -> Self {
        WebError {
            status: 400,
            exception: "UnsupportedOperationException",
            message: msg.into(),
        }
    }

    pub fn java_class(&self) -> &'static str {
        tdfs_proto::java_class::java_class(self.exception)
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"RemoteException": {
            "exception": self.exception,
            "javaClassName": self.java_class(),
            "message": self.message,
        }})
    }
}

/// Hadoop's status codes (`ExceptionHandler`): 404 for FileNotFound, 400 for
/// illegal arguments, 403 for every other IOException, 500 for the rest.
impl From<FsError> for WebError {
    fn from(e: FsError) -> Self {
        let exception = match &e {
            FsError::Unsupported(_) => "UnsupportedOperationException",
            _ => e.hadoop_exception(),
        };
        let status = match &e {
            FsError::FileNotFound(_) | FsError::IsADirectory(_) => 404,
            FsError::InvalidPath { .. } | FsError::InvalidArgument(_) | FsError::Unsupported(_) => {
                400
            }
            FsError::Internal(_) => 500,
            _ => 403,
        };
        WebError {
            status,
            exception,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        crate::json::response(code, &self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_errors_as_hadoop() {
        let cases = [
            (
                FsError::FileNotFound("/x".into()),
                404,
                "FileNotFoundException",
            ),
            (
                FsError::AlreadyExists("/x".into()),
                403,
                "FileAlreadyExistsException",
            ),
            (
                FsError::DirectoryNotEmpty("/x".into()),
                403,
                "PathIsNotEmptyDirectoryException",
            ),
            (
                FsError::PermissionDenied {
                    user: "u".into(),
                    access: "WRITE".into(),
                    path: "/".into(),
                },
                403,
                "AccessControlException",
            ),
            (
                FsError::InvalidPath {
                    path: "a".into(),
                    reason: "relative".into(),
                },
                400,
                "InvalidPathException",
            ),
        ];
        for (e, status, ex) in cases {
            let w = WebError::from(e);
            assert_eq!((w.status, w.exception), (status, ex));
            assert!(w.java_class().ends_with(ex));
        }
        let nf = WebError::from(FsError::FileNotFound("/x".into()));
        assert!(nf.message.contains("does not exist"));
    }
}
