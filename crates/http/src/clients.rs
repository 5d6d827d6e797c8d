//! One metadata client per WebHDFS user, so that every request acts as the
//! user it names (Hadoop's simple authentication) and each user's open files
//! hold their own lease.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tdfs_client::{ClientConfig, MetaClient};
use tdfs_proto::FsError;

/// Most users kept at once; beyond it the cache starts over (clients are
/// cheap to rebuild, and open writers keep their own `Arc`).
const MAX_USERS: usize = 1024;

/// Clients by user name, built from one template configuration.
pub struct Clients {
    template: ClientConfig,
    /// The user for requests without `user.name` (Hadoop uses `dr.who`).
    pub default_user: String,
    by_user: Mutex<HashMap<String, Arc<MetaClient>>>,
}

impl Clients {
    pub fn new(template: ClientConfig) -> Self {
        Clients {
            template,
            default_user: "dr.who".into(),
            by_user: Mutex::new(HashMap::new()),
        }
    }

    /// The metadata nodes the clients reach.
    pub fn meta_addrs(&self) -> &[String] {
        &self.template.meta
    }

    pub fn for_user(&self, user: Option<&str>) -> Result<Arc<MetaClient>, FsError> {
        let user = user.unwrap_or(&self.default_user);
        let mut m = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = m.get(user) {
            return Ok(c.clone());
        }
        if m.len() >= MAX_USERS {
            m.clear();
        }
        let mut cfg = self.template.clone();
        cfg.user = user.to_string();
        let c = Arc::new(MetaClient::new(cfg)?);
        m.insert(user.to_string(), c.clone());
        Ok(c)
    }
}
