//! A small pool of instances of one plugin, each in its own store behind its own async
//! lock, so concurrent connections do not queue on one instance.
//!
//! A failed call (trap, deadline, invalid answer) replaces its instance with a fresh one
//! from the `InstancePre` (`init` runs again) before it returns. A slot holds `None` only
//! when that replacement failed; the next call through it tries again. An instance whose
//! call was abandoned (the caller's future dropped mid-call) is replaced on its next use.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, MutexGuard};
use wasmtime::Store;

use super::Error;
use super::bindings::{self, PluginBindings, PluginBindingsPre};
use super::error::source;
use super::host::{HostState, PluginShared};

/// Shortest deadline of instantiation plus `init`.
const MIN_INIT_TIMEOUT: Duration = Duration::from_secs(1);

/// One live instance and its store.
pub(super) struct Instance {
    pub(super) store: Store<HostState>,
    pub(super) bindings: PluginBindings,
}

/// What making an instance needs.
pub(super) struct Template {
    pub(super) pre: PluginBindingsPre<HostState>,
    pub(super) shared: Arc<PluginShared>,
    pub(super) config_json: String,
    pub(super) memory_limit_bytes: usize,
    pub(super) hook_timeout: Duration,
}

impl Template {
    fn name(&self) -> String {
        self.shared.name.to_string()
    }

    /// A fresh store and instance with `init` called, within the init deadline.
    pub(super) async fn instantiate(&self) -> Result<Instance, Error> {
        let mut store = Store::new(
            self.pre.engine(),
            HostState::new(self.shared.clone(), self.memory_limit_bytes),
        );
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|mut ctx| ctx.data_mut().deadline.on_tick());
        let timeout = self.hook_timeout.max(MIN_INIT_TIMEOUT);
        store.data_mut().deadline.arm(Instant::now() + timeout);
        store.set_epoch_deadline(1);
        let bindings =
            self.pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| Error::Instantiate {
                    plugin: self.name(),
                    source: source(e),
                })?;
        let init = bindings::init(&bindings, &mut store, &self.config_json).await;
        let message = match init {
            Ok(Ok(())) => return Ok(Instance { store, bindings }),
            Ok(Err(message)) => message,
            Err(_) if store.data().deadline.hit => {
                format!("deadline of {} ms exceeded", timeout.as_millis())
            }
            Err(_) if store.data().limiter.exceeded => {
                format!("memory limit of {} bytes exceeded", self.memory_limit_bytes)
            }
            Err(e) => format!("trapped: {e:#}"),
        };
        Err(Error::Init {
            plugin: self.name(),
            message,
        })
    }
}

/// The instances of one plugin.
pub(super) struct Pool {
    slots: Vec<Mutex<Option<Instance>>>,
    next: AtomicUsize,
}

/// A locked slot: `Some` holds an instance ready for a call.
pub(super) type Slot<'a> = MutexGuard<'a, Option<Instance>>;

impl Pool {
    pub(super) fn new(instances: Vec<Instance>) -> Self {
        Self {
            slots: instances.into_iter().map(|i| Mutex::new(Some(i))).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A free slot if there is one (round robin from a rotating start), else waits for
    /// the next slot in turn.
    pub(super) async fn acquire(&self) -> Slot<'_> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(slot) = self.slots[(start + i) % n].try_lock() {
                return slot;
            }
        }
        self.slots[start].lock().await
    }

    /// Number of slots.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }
}
