//! The sled backend runs the store conformance suite.

use super::SledStore;
use crate::store::conformance::Backend;
use crate::store::Store;

/// A sled store in a temporary directory; every `open` reopens the same directory.
struct Sled(tempfile::TempDir);

impl Backend for Sled {
    fn new() -> Self {
        Sled(tempfile::tempdir().unwrap())
    }

    fn open(&self) -> Box<dyn Store> {
        Box::new(SledStore::open(self.0.path()).unwrap())
    }
}

crate::store_conformance!(Sled);
