//! A queue that costs one word while it has never been used.
//!
//! A connection keeps two queues that are empty nearly all the time: deliveries made
//! locally (retained messages on SUBSCRIBE) and packets waiting for the store. A `std`
//! `VecDeque` is 32 bytes even empty, in every connection; this one is a pointer, and
//! its `VecDeque` is allocated by the first push. [`LazyDeque::release`] gives an empty
//! queue's allocation back (a connection going idle calls it).

use std::collections::VecDeque;

/// A `VecDeque` boxed on first use.
// The box is the point: one word where the `VecDeque` inline is four.
#[allow(clippy::box_collection)]
#[derive(Debug)]
pub struct LazyDeque<T>(Option<Box<VecDeque<T>>>);

impl<T> Default for LazyDeque<T> {
    fn default() -> Self {
        LazyDeque(None)
    }
}

impl<T> LazyDeque<T> {
    /// An empty queue (allocates nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    /// Entries queued.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    /// The oldest entry.
    pub fn front(&self) -> Option<&T> {
        self.0.as_ref()?.front()
    }

    /// The newest entry.
    pub fn back(&self) -> Option<&T> {
        self.0.as_ref()?.back()
    }

    /// Adds `value` at the end, allocating the queue if it has none.
    pub fn push_back(&mut self, value: T) {
        self.0.get_or_insert_default().push_back(value);
    }

    /// Takes the oldest entry out (the allocation stays for the next push).
    pub fn pop_front(&mut self) -> Option<T> {
        self.0.as_mut()?.pop_front()
    }

    /// Frees the queue's allocation when it holds nothing.
    pub fn release(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }

    /// True while the queue holds an allocation.
    pub fn is_allocated(&self) -> bool {
        self.0.is_some()
    }
}

impl<T> Extend<T> for LazyDeque<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        let mut iter = iter.into_iter().peekable();
        if iter.peek().is_some() {
            self.0.get_or_insert_default().extend(iter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unused_queue_is_one_word_and_allocates_nothing() {
        assert_eq!(size_of::<LazyDeque<[u64; 8]>>(), size_of::<usize>());
        let mut q: LazyDeque<u32> = LazyDeque::new();
        q.extend(std::iter::empty());
        assert!(!q.is_allocated(), "extending by nothing allocates nothing");
        assert!(q.is_empty());
        assert_eq!((q.front(), q.back(), q.len()), (None, None, 0));
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn entries_come_out_in_order_and_release_frees_only_an_empty_queue() {
        let mut q = LazyDeque::new();
        q.push_back(1);
        q.extend([2, 3]);
        assert_eq!((q.len(), q.front(), q.back()), (3, Some(&1), Some(&3)));
        q.release();
        assert!(q.is_allocated(), "a queue holding entries keeps them");
        assert_eq!(q.pop_front(), Some(1));
        assert_eq!(q.pop_front(), Some(2));
        assert_eq!(q.pop_front(), Some(3));
        assert_eq!(q.pop_front(), None);
        assert!(
            q.is_allocated(),
            "popping keeps the allocation for the next push"
        );
        q.release();
        assert!(!q.is_allocated());
        q.push_back(4);
        assert_eq!(q.pop_front(), Some(4));
    }

    proptest::proptest! {
        /// The queue behaves as a `VecDeque` under any mix of operations.
        #[test]
        fn behaves_as_a_vecdeque(ops in proptest::collection::vec(0u8..4, 0..64)) {
            let mut q = LazyDeque::new();
            let mut model = VecDeque::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    0 => { q.push_back(i); model.push_back(i); }
                    1 => proptest::prop_assert_eq!(q.pop_front(), model.pop_front()),
                    2 => q.release(),
                    _ => { q.extend([i, i + 1]); model.extend([i, i + 1]); }
                }
                proptest::prop_assert_eq!(q.len(), model.len());
                proptest::prop_assert_eq!(q.front(), model.front());
                proptest::prop_assert_eq!(q.back(), model.back());
            }
        }
    }
}
