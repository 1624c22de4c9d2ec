//! Background work of modules: health checks, pollers, anything that waits
//! on the network or a clock. The runtime starts a module's tasks
//! ([`crate::module::Module::tasks`], or [`Runtime::spawn_task`]) and stops
//! them at shutdown. A task never touches its module's state: it sends the
//! module messages ([`TaskCtx::send`], handled on the core as
//! [`crate::module::Event::Task`]) and calls module services.
//!
//! Tasks sleep with `tokio::time`, so tests drive them with a paused,
//! simulated clock (`#[tokio::test(start_paused = true)]`).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::cookie::Owner;
use crate::runtime::core::CoreEvent;
use crate::runtime::Runtime;

type TaskFn = Box<dyn FnOnce(TaskCtx) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A background task a module wants run.
pub struct Task {
    name: &'static str,
    run: TaskFn,
}

impl Task {
    pub fn new<F, Fut>(name: &'static str, run: F) -> Task
    where
        F: FnOnce(TaskCtx) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Task {
            name,
            run: Box::new(move |ctx| Box::pin(run(ctx))),
        }
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").field("name", &self.name).finish()
    }
}

/// What a running task can reach.
#[derive(Clone)]
pub struct TaskCtx {
    owner: Owner,
    core: mpsc::Sender<CoreEvent>,
    runtime: Runtime,
    stop: watch::Receiver<bool>,
}

impl TaskCtx {
    /// Hands `payload` to the task's module on the core; false once the
    /// core is gone.
    pub async fn send(&self, payload: impl Any + Send) -> bool {
        self.core
            .send(CoreEvent::Task {
                owner: self.owner,
                payload: Box::new(payload),
            })
            .await
            .is_ok()
    }

    /// The runtime, for module calls and switch queries.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Resolves when the runtime shuts down; select on it around waits.
    pub async fn stopped(&mut self) {
        // An error means the runtime (the sender) is gone: stopped too.
        let _ = self.stop.wait_for(|stop| *stop).await;
    }

    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// The running tasks of a runtime.
#[derive(Clone)]
pub(crate) struct Tasks {
    set: Arc<Mutex<JoinSet<()>>>,
    stop: Arc<watch::Sender<bool>>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            set: Arc::default(),
            stop: Arc::new(watch::channel(false).0),
        }
    }
}

impl Tasks {
    pub(crate) fn spawn(
        &self,
        owner: Owner,
        task: Task,
        core: mpsc::Sender<CoreEvent>,
        runtime: Runtime,
    ) {
        let ctx = TaskCtx {
            owner,
            core,
            runtime,
            stop: self.stop.subscribe(),
        };
        let name = task.name;
        let future = (task.run)(ctx);
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        set.spawn(async move {
            future.await;
            info!(module = owner.name(), task = name, "task ended");
        });
    }

    /// Tells every task to stop and waits up to `grace` for them; the
    /// rest are aborted.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let mut set = std::mem::take(&mut *self.set.lock().unwrap_or_else(PoisonError::into_inner));
        let all_done = async { while set.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            warn!(
                left = set.len(),
                "tasks did not stop in time; aborting them"
            );
            set.abort_all();
        }
    }
}

impl Runtime {
    /// Starts `task` for the module `owner` (messages it sends reach that
    /// module); it is stopped by [`Runtime::shutdown`].
    pub fn spawn_task(&self, owner: Owner, task: Task) {
        self.tasks
            .spawn(owner, task, self.core.clone(), self.clone());
    }

    /// Stops every module task (waiting up to `grace`).
    pub async fn shutdown(&self, grace: Duration) {
        self.tasks.shutdown(grace).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::module::{Ctx, Event, Module};
    use crate::runtime::RuntimeConfig;
    use crate::store::MemoryStore;

    /// A module whose task reports every 10 s until the runtime stops.
    #[derive(Default)]
    struct Poller {
        reports: Vec<u32>,
    }

    impl Module for Poller {
        fn owner(&self) -> Owner {
            Owner::HostAware
        }

        fn handle(&mut self, event: &Event<'_>, _ctx: &mut Ctx) {
            if let Event::Task { payload } = event {
                if let Some(n) = payload.downcast_ref::<u32>() {
                    self.reports.push(*n);
                }
            }
        }

        fn tasks(&mut self) -> Vec<Task> {
            vec![Task::new("poll", |mut ctx: TaskCtx| async move {
                let mut interval = tokio::time::interval(Duration::from_secs(10));
                for n in 0u32.. {
                    tokio::select! {
                        _ = interval.tick() => {}
                        _ = ctx.stopped() => return,
                    }
                    if !ctx.send(n).await {
                        return;
                    }
                }
            })]
        }
    }

    async fn reports(runtime: &Runtime) -> Vec<u32> {
        runtime
            .call::<Poller, _>(|p, _| p.reports.clone())
            .await
            .unwrap()
            .value
    }

    #[tokio::test(start_paused = true)]
    async fn a_modules_task_runs_on_the_simulated_clock_and_stops_at_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let runtime = Runtime::start(
            listener,
            RuntimeConfig::default(),
            vec![Box::new(Poller::default())],
            Arc::new(MemoryStore::default()),
        );
        // An interval ticks at once, then every 10 s of simulated time.
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(reports(&runtime).await, [0, 1, 2, 3]);
        runtime.shutdown(Duration::from_secs(1)).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(reports(&runtime).await.len(), 4, "no report after shutdown");
    }
}
