//! What a connection has to write: encoded packets in one buffer, and the large
//! payloads of deliveries beside them, shared with their message rather than copied.
//!
//! A delivery of a 64 KiB message used to be copied into the subscriber's write buffer
//! and then, by the kernel, into the socket: in fan-out of 64 KiB QoS 0 messages to 50
//! subscribers the first copy (`memmove`) was 16 % of the broker's CPU. Queued here, a
//! large payload is the message's own `Bytes`, and tokio's `write_buf` hands the
//! encoded heads and the payloads to one vectored write (`writev`), the kernel's copy
//! the only one. Streams that do not write vectors (WebSocket: every write is a
//! message of its own) get the payload copied, as before.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// The smallest payload queued shared rather than copied. Below it the copy costs less
/// than what sharing does: a reference count that every subscriber's worker changes
/// twice, and a slot of the 64 a vectored write takes.
pub(crate) const SHARED_PAYLOAD_MIN: usize = 8 * 1024;

/// The bytes a connection has yet to write, in order.
#[derive(Default)]
pub(crate) struct WriteQueue(Parts);

enum Parts {
    /// Encoded packets only, in one buffer.
    Flat(BytesMut),
    /// Shared payloads queued too. Boxed: the `Io` of every idle connection holds a
    /// queue, and with the box it stays the 32 bytes of the buffer it was before.
    Mixed(Box<Mixed>),
}

impl Default for Parts {
    fn default() -> Self {
        Parts::Flat(BytesMut::new())
    }
}

struct Mixed {
    /// Ahead of `tail`: encoded bytes split off it and shared payloads, oldest first.
    front: VecDeque<Bytes>,
    /// The bytes in `front`.
    front_len: usize,
    /// Encoded packets after the last shared payload.
    tail: BytesMut,
}

impl WriteQueue {
    fn tail(&self) -> &BytesMut {
        match &self.0 {
            Parts::Flat(tail) => tail,
            Parts::Mixed(m) => &m.tail,
        }
    }

    /// The buffer packets are encoded into: its bytes go out after everything queued.
    pub(crate) fn buf_mut(&mut self) -> &mut BytesMut {
        match &mut self.0 {
            Parts::Flat(tail) => tail,
            Parts::Mixed(m) => &mut m.tail,
        }
    }

    /// The bytes queued.
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Parts::Flat(tail) => tail.len(),
            Parts::Mixed(m) => m.front_len + m.tail.len(),
        }
    }

    /// Nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops what is queued; the tail keeps its allocation.
    pub(crate) fn clear(&mut self) {
        let mut tail = std::mem::take(self.buf_mut());
        tail.clear();
        self.0 = Parts::Flat(tail);
    }

    /// Appends bytes (copied).
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf_mut().extend_from_slice(bytes);
    }

    /// Appends `payload` without copying it: what the tail holds goes ahead of it.
    pub(crate) fn push_shared(&mut self, payload: Bytes) {
        if payload.is_empty() {
            return;
        }
        let mut m = match std::mem::take(&mut self.0) {
            Parts::Mixed(m) => m,
            Parts::Flat(tail) => Box::new(Mixed {
                front: VecDeque::new(),
                front_len: 0,
                tail,
            }),
        };
        if !m.tail.is_empty() {
            let encoded = m.tail.split().freeze();
            m.front_len += encoded.len();
            m.front.push_back(encoded);
        }
        m.front_len += payload.len();
        m.front.push_back(payload);
        self.0 = Parts::Mixed(m);
    }

    /// The tail's allocation (what an idle connection keeps).
    pub(crate) fn capacity(&self) -> usize {
        self.tail().capacity()
    }

    /// Gives the tail's allocation back once nothing is queued and it holds more than
    /// `keep` bytes: after a burst, or with 0 when the connection goes idle.
    pub(crate) fn release(&mut self, keep: usize) {
        if self.is_empty() && self.capacity() > keep {
            self.0 = Parts::default();
        }
    }
}

impl Buf for WriteQueue {
    fn remaining(&self) -> usize {
        self.len()
    }

    fn chunk(&self) -> &[u8] {
        match &self.0 {
            Parts::Flat(tail) => tail,
            Parts::Mixed(m) => m.front.front().map_or(&m.tail[..], |c| &c[..]),
        }
    }

    fn advance(&mut self, mut cnt: usize) {
        if let Parts::Mixed(m) = &mut self.0 {
            while let Some(chunk) = m.front.front_mut() {
                if cnt == 0 {
                    break;
                }
                let n = cnt.min(chunk.len());
                chunk.advance(n);
                m.front_len -= n;
                cnt -= n;
                if chunk.is_empty() {
                    m.front.pop_front();
                }
            }
            if m.front.is_empty() {
                let tail = std::mem::take(&mut m.tail);
                self.0 = Parts::Flat(tail);
            }
        }
        self.buf_mut().advance(cnt);
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let front = match &self.0 {
            Parts::Flat(_) => None,
            Parts::Mixed(m) => Some(m.front.iter()),
        };
        let chunks = front.into_iter().flatten().map(|c| &c[..]);
        let mut n = 0;
        for chunk in chunks.chain(Some(&self.tail()[..])) {
            if n == dst.len() {
                break;
            }
            if !chunk.is_empty() {
                dst[n] = IoSlice::new(chunk);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl WriteQueue {
        fn is_flat(&self) -> bool {
            matches!(self.0, Parts::Flat(_))
        }
    }

    fn drain_vectored(q: &mut WriteQueue, slots: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while q.has_remaining() {
            let mut slices = vec![IoSlice::new(&[]); slots];
            let n = q.chunks_vectored(&mut slices);
            assert!(n > 0, "bytes remain, so a slice is given");
            // A short write: all of the first slice and half of the second.
            let mut take = slices[0].len();
            if n > 1 {
                take += slices[1].len() / 2;
            }
            let written: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
            out.extend_from_slice(&written[..take]);
            q.advance(take);
        }
        out
    }

    #[test]
    fn bytes_leave_in_the_order_they_were_queued_shared_or_copied() {
        let mut q = WriteQueue::default();
        q.extend_from_slice(b"head1");
        q.push_shared(Bytes::from_static(b"payload-one"));
        q.buf_mut().extend_from_slice(b"ack");
        q.extend_from_slice(b"head2");
        q.push_shared(Bytes::from_static(b"payload-two"));
        q.push_shared(Bytes::from_static(b"three"));
        q.extend_from_slice(b"tail");
        assert_eq!(q.len(), 5 + 11 + 3 + 5 + 11 + 5 + 4);
        let expected = b"head1payload-oneackhead2payload-twothreetail".to_vec();
        for slots in [1, 2, 3, 64] {
            let mut copy = WriteQueue::default();
            copy.extend_from_slice(b"head1");
            copy.push_shared(Bytes::from_static(b"payload-one"));
            copy.extend_from_slice(b"ackhead2");
            copy.push_shared(Bytes::from_static(b"payload-two"));
            copy.push_shared(Bytes::from_static(b"three"));
            copy.extend_from_slice(b"tail");
            assert_eq!(drain_vectored(&mut copy, slots), expected, "{slots} slots");
            assert!(copy.is_empty() && copy.is_flat());
        }
        let mut plain = Vec::new();
        while q.has_remaining() {
            let n = q.chunk().len().min(4);
            plain.extend_from_slice(&q.chunk()[..n]);
            q.advance(n);
        }
        assert_eq!(plain, expected, "chunk by chunk, four bytes at a time");
    }

    #[test]
    fn a_shared_payload_is_not_copied() {
        let payload = Bytes::from(vec![9u8; 64 * 1024]);
        let mut q = WriteQueue::default();
        q.extend_from_slice(&[0x30, 0x85, 0x80, 0x04]);
        q.push_shared(payload.clone());
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(q.chunks_vectored(&mut slices), 2);
        assert_eq!(
            slices[1].as_ptr(),
            payload.as_ptr(),
            "the message's own bytes"
        );
        assert!(
            q.capacity() < 1024,
            "the tail did not grow to hold the payload"
        );
    }

    #[test]
    fn an_emptied_queue_drops_its_shared_part_and_release_gives_the_tail_back() {
        let mut q = WriteQueue::default();
        q.extend_from_slice(&[1; 100]);
        q.push_shared(Bytes::from(vec![2; 10]));
        q.buf_mut().reserve(1000);
        q.extend_from_slice(b"after");
        q.advance(q.len());
        assert!(q.is_empty() && q.is_flat());
        q.release(64 * 1024);
        assert!(q.capacity() > 0, "a small buffer is kept while busy");
        q.release(0);
        assert_eq!(q.capacity(), 0, "and given back when idle");
        q.extend_from_slice(b"x");
        q.release(0);
        assert_eq!(q.len(), 1, "nothing queued is ever released");
    }

    #[test]
    fn an_empty_payload_adds_no_empty_slice() {
        let mut q = WriteQueue::default();
        q.extend_from_slice(b"ab");
        q.push_shared(Bytes::new());
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(q.chunks_vectored(&mut slices), 1);
        assert_eq!(&*slices[0], b"ab");
    }
}
