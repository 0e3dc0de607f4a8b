//! A session of the test that holds locks the way an app's idle transaction does.

/// A session of the test, like an app's, that runs `BEGIN; <sql>` and then sits idle in its
/// transaction, holding the locks `sql` took, until released.
pub struct IdleInTransaction {
    pub pid: i32,
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IdleInTransaction {
    pub fn start(url: &str, app: &str, sql: &str) -> IdleInTransaction {
        let url = xtask::config::DbUrl::parse(url).unwrap();
        let (app, sql) = (app.to_string(), sql.to_string());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            super::block_on(async move {
                let c = xtask::pg::client::connect(&url, std::time::Duration::from_secs(10))
                    .await
                    .unwrap();
                c.batch_execute(&format!("SET application_name = '{app}'; BEGIN; {sql}"))
                    .await
                    .unwrap();
                let pid: i32 = c
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await
                    .unwrap()
                    .get(0);
                ready_tx.send(pid).unwrap();
                // Idle in the transaction until released. The ROLLBACK frees the locks before
                // `release` returns (a closed connection frees them only once the server notices);
                // it fails harmlessly when the session was ended from outside.
                tokio::task::spawn_blocking(move || done_rx.recv())
                    .await
                    .unwrap()
                    .ok();
                let _ = c.batch_execute("ROLLBACK").await;
            })
        });
        let pid = ready_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the test's session did not take its lock");
        IdleInTransaction {
            pid,
            done: Some(done_tx),
            thread: Some(thread),
        }
    }

    pub fn release(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for IdleInTransaction {
    fn drop(&mut self) {
        self.release();
    }
}
