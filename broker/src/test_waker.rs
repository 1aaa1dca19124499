//! A waker for tests that counts the copies other code keeps of it, and passes wake-ups
//! on to the task that polls the test.

use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

/// Hand [`TrackedWaker::waker`] to the code under test; [`TrackedWaker::kept`] is how
/// many copies it still holds.
#[derive(Default)]
pub struct TrackedWaker {
    /// The waker of the task that runs the test, woken in turn.
    outer: Mutex<Option<Waker>>,
}

impl TrackedWaker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A waker whose wake-ups go to `cx`'s task (none when `cx` is `None`).
    pub fn waker(self: &Arc<Self>, cx: Option<&Context<'_>>) -> Waker {
        *self.outer.lock().unwrap_or_else(|e| e.into_inner()) = cx.map(|cx| cx.waker().clone());
        Waker::from(Arc::clone(self))
    }

    /// Copies of the waker held elsewhere.
    pub fn kept(self: &Arc<Self>) -> usize {
        Arc::strong_count(self) - 1
    }
}

impl Wake for TrackedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(w) = self
            .outer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            w.wake_by_ref();
        }
    }
}
