//! File operations io_uring does not carry here (create-write-fsync-rename of small files,
//! renames, unlinks, directory listings) run on the executor's blocking thread, so that a
//! shard's reactor never waits for them: the shard goes on serving requests while the thread
//! sleeps in the kernel. The blocking thread is pinned with its executor (glommio places it on
//! the executor's CPU), so it uses the time the shard leaves idle while it waits.

/// Runs `operation` on the current executor's blocking thread and returns its result.
/// Must be awaited on a glommio executor (every shard, and the storage tests, are one).
pub async fn off_reactor<R, F>(operation: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(operation).await
}
