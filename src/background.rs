//! Threads for work that must not slow the request path. An online backup
//! reads and compresses the whole store while the service takes writes; on
//! a machine whose cores the writer and the HTTP workers share with it,
//! it runs at the lowest CPU priority (nice 19), so they go first and the
//! backup takes what is left. It still finishes on a busy machine: the
//! scheduler gives a nice-19 thread about 1.5% of a core beside each busy
//! nice-0 one, and every idle moment.

/// Runs `work` on a new thread named `name` at the lowest CPU priority. A
/// thread of its own, not the runtime's blocking pool: a thread may not
/// raise its priority again once it lowered it, and the pool's threads
/// serve requests afterwards.
pub fn spawn_low_priority<F>(name: &str, work: F) -> std::io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        lower_priority();
        work()
    })?;
    Ok(())
}

/// Sets the calling thread's nice value to 19: on Linux, `setpriority` for
/// the process with pid 0 changes the calling thread alone. A refusal is
/// logged, not fatal: the work then runs at the normal priority.
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, 19) {
        tracing::warn!(error = %e, "could not lower a background thread's CPU priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_runs_at_the_lowest_priority_and_the_caller_keeps_its_own() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_low_priority("test-low", move || tx.send(rustix::process::getpriority_process(None).unwrap()).unwrap())
            .unwrap();
        assert_eq!(rx.recv().unwrap(), 19);
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }
}
