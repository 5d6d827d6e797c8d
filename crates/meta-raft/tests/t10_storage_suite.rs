//! openraft's storage conformance suite, run on the durable log store and the
//! namespace state machine.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use tdfs_meta_raft::log_store::LogStore;
use tdfs_meta_raft::state_machine::StateMachine;
use tdfs_meta_raft::types::TypeConfig;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(tdfs_disk::real(), &dir.path().join("raft"), true)?;
        let sm = StateMachine::open_standalone(tdfs_disk::real(), &dir.path().join("sm"))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn storage_conformance_suite() -> Result<(), StorageError<u64>> {
    Suite::test_all(Builder)
}
