//! The one tokio runtime of a command: the connections that hold a source's snapshot and a lock
//! live on it between the synchronous steps (tools, Alembic) that run around them.

use anyhow::{anyhow, Result};

pub struct Runtime(tokio::runtime::Runtime);

impl Runtime {
    pub fn new() -> Result<Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map(Runtime)
            .map_err(|e| anyhow!("starting the async runtime: {e}"))
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }

    /// Runs `future` on the runtime's workers while the caller goes on (`block_on` the handle to
    /// wait for it).
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.spawn(future)
    }
}
