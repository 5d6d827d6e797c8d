//! Interned user and group names: inodes store a 4-byte index instead of
//! a string, so ten million files owned by one user cost one string.

use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tdfs_proto::FsError;

/// Distinct names accepted. Users name themselves (Hadoop's simple
/// authentication), so the table is bounded against a client inventing
/// names without end.
pub const MAX_NAMES: usize = 1 << 20;

/// A table of interned names; index 0 is the empty name.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Strings {
    names: Vec<CompactString>,
    #[serde(skip)]
    index: FxHashMap<CompactString, u32>,
}

impl Default for Strings {
    fn default() -> Self {
        let mut s = Strings {
            names: Vec::new(),
            index: FxHashMap::default(),
        };
        s.names.push(CompactString::default());
        s.rebuild();
        s
    }
}

impl Strings {
    /// The index of `name`, interning it if new.
    pub fn intern(&mut self, name: &str) -> Result<u32, FsError> {
        if let Some(&i) = self.index.get(name) {
            return Ok(i);
        }
        if self.names.len() >= MAX_NAMES {
            return Err(FsError::InvalidArgument(format!(
                "too many distinct user and group names (limit {MAX_NAMES})"
            )));
        }
        let i = self.names.len() as u32;
        self.names.push(name.into());
        self.index.insert(name.into(), i);
        Ok(i)
    }

    /// The index of `name` if it was ever interned.
    pub fn find(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// The name at `i` ("" for an unknown index).
    pub fn get(&self, i: u32) -> &str {
        self.names.get(i as usize).map_or("", |s| s.as_str())
    }

    /// Rebuilds the lookup index after loading.
    pub fn rebuild(&mut self) {
        self.index = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_survives_a_round_trip() {
        let mut s = Strings::default();
        let a = s.intern("alice").unwrap();
        let b = s.intern("bob").unwrap();
        assert_eq!(s.intern("alice").unwrap(), a);
        assert_ne!(a, b);
        let bytes = bincode::serde::encode_to_vec(&s, bincode::config::standard()).unwrap();
        let (mut t, _): (Strings, _) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        t.rebuild();
        assert_eq!(t.find("bob"), Some(b));
        assert_eq!(t.get(a), "alice");
        assert_eq!(t.get(99), "");
    }
}
