//! The embedded backends, reached through the factory crate's re-export, pass
//! the conformance kit as an application would build them.

use storage_core::testkit::{CHECKS, run_conformance};
use storage_factory::storage_core::{LocalBackend, MemoryBackend, StorageBackend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backends_pass_the_kit_as_trait_objects() {
    let dir = tempfile::tempdir().unwrap();
    let backends: Vec<std::sync::Arc<dyn StorageBackend>> = vec![
        std::sync::Arc::new(MemoryBackend::new()),
        std::sync::Arc::new(LocalBackend::new(dir.path()).unwrap()),
    ];
    for b in backends {
        let report = run_conformance(b.as_ref()).await;
        report.assert_passed();
        assert_eq!(report.passed.len(), CHECKS.len(), "{b:?}");
    }
}
