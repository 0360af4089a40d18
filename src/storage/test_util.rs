//! What the storage tests share: a glommio executor to run a test body in, and a fresh
//! directory per test.

use std::path::PathBuf;

/// Runs `make()`'s future on a new glommio executor and waits for it; a panic inside fails the
/// test.
pub fn run<G, F>(make: G)
where
    G: FnOnce() -> F + Send + 'static,
    F: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(make)
        .expect("executor")
        .join()
        .expect("join");
}

/// A path under the system temp directory unique to this test and process, emptied.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flink-storage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
