//! Wire types shared by every tdfs process: ids, paths, errors, requests and
//! responses, and the frame codec. No I/O lives here; `tdfs-rpc` moves these
//! values over sockets.

pub mod acl;
pub mod codec;
pub mod error;
pub mod event;
pub mod ids;
pub mod java_class;
pub mod meta;
pub mod path;
pub mod perm;
pub mod quota;
pub mod snapshot;
pub mod trash;
pub mod xattr;

pub use error::{FsError, QuotaKind};
pub use ids::{BlockId, DatanodeId, MetaId};

/// Version carried by the handshake; a peer with another version is refused.
pub const PROTOCOL_VERSION: u32 = 2;
