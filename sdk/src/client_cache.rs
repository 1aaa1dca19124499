//! The records of the clients a plugin instance has seen, kept by `client-handle`.
//!
//! Hooks after `on-connect` receive a handle, not the client's record; the record behind a
//! handle never changes, so it is asked of the broker (`host.current-client`) the first
//! time an instance sees the handle and kept. The table is direct mapped
//! (handle modulo [`SLOTS`]): the broker hands out handles in sequence, so the last
//! [`SLOTS`] connections never evict one another, and the memory it holds is bounded.

use std::cell::RefCell;
use std::rc::Rc;

use crate::backend;
use crate::client::Client;

/// Records kept per instance.
pub(crate) const SLOTS: usize = 1024;

/// One slot: the handle and its record.
type Kept = Option<(u64, Rc<Client>)>;

thread_local! {
    static KEPT: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
}

/// The record of `handle`, the client whose hook runs.
///
/// # Panics
/// When the broker has no client for the running hook, which it always has during a
/// hook; the panic traps the call, and the broker counts a plugin failure.
pub(crate) fn client(handle: u64) -> Rc<Client> {
    // invariant: SLOTS fits in u64 and the remainder is below SLOTS, so both casts are exact.
    let slot = (handle % SLOTS as u64) as usize;
    let kept = KEPT.with(|kept| match kept.borrow().get(slot) {
        Some(Some((h, record))) if *h == handle => Some(Rc::clone(record)),
        _ => None,
    });
    if let Some(record) = kept {
        return record;
    }
    let record = match backend::current_client() {
        Some(record) => Rc::new(record),
        None => panic!("the broker gave no client record for handle {handle}"),
    };
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() <= slot {
            kept.resize(slot + 1, None);
        }
        kept[slot] = Some((handle, Rc::clone(&record)));
    });
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::native::with_host;

    fn serve(client_id: &str) {
        with_host(|h| h.client = Some(Client::new(client_id)));
    }

    fn lookups() -> usize {
        with_host(|h| h.client_lookups)
    }

    #[test]
    fn a_handle_is_looked_up_once_then_kept() {
        serve("a");
        assert_eq!(client(7).client_id(), "a");
        serve("changed behind the cache");
        assert_eq!(client(7).client_id(), "a");
        assert_eq!(lookups(), 1);
    }

    #[test]
    fn a_new_handle_in_the_same_slot_replaces_the_kept_record() {
        serve("first");
        assert_eq!(client(3).client_id(), "first");
        serve("second");
        let colliding = 3 + SLOTS as u64;
        assert_eq!(client(colliding).client_id(), "second");
        serve("first again");
        assert_eq!(client(3).client_id(), "first again", "evicted, asked again");
        assert_eq!(lookups(), 3);
    }

    #[test]
    fn consecutive_handles_do_not_evict_each_other() {
        for handle in 0..SLOTS as u64 {
            serve(&format!("c{handle}"));
            client(handle);
        }
        serve("never asked");
        for handle in 0..SLOTS as u64 {
            assert_eq!(client(handle).client_id(), format!("c{handle}"));
        }
        assert_eq!(lookups(), SLOTS);
    }

    #[test]
    #[should_panic(expected = "no client record for handle 9")]
    fn a_hook_without_a_client_record_panics() {
        client(9);
    }
}
