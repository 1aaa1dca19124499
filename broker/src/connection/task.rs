//! A connection's task: the handshake, active phases, parked waits and the close, as a
//! small state machine rather than one `async` block.
//!
//! Most connections of a large deployment are idle most of the time. An `async` event
//! loop keeps its whole `select!` state (the read, write, outbox and store futures) in
//! the task for as long as the connection lives. Here each phase is boxed while it
//! runs: when a wake-up leaves the connection quiet (nothing to write, nothing held
//! for the store) the active phase returns its [`Link`] and the task *parks*. A parked
//! task's wake-up sources are polled in place: the socket (read into the link's buffer,
//! or a small stack buffer once the idle connection gave its buffer back), the outbox
//! and the control block. Whatever wakes it starts a new active phase.
//!
//! A busy connection parks and wakes thousands of times a second, and allocating its
//! active phase each time costs more than the phase itself (two workers freeing each
//! other's allocations contend on the allocator's locks: p2p QoS 1 ran at half speed).
//! So a connection that has parked a few times ([`WARM_AFTER`]) parks *warm*: it keeps
//! the active phase's allocation (reused in place by the next wake-up) and a timer.
//! Only after [`COOL_AFTER`] without a wake-up does it go *cold*: the phase, the timer,
//! an unused read buffer and empty queues are freed, and the task holds just the link.
//!
//! A cold connection also gives up its tracing span, which the subscriber's registry
//! keeps for as long as it is open (0.5 KiB per idle connection at the default `info`
//! level); the next wake-up makes it again from the link ([`Link::span`]).
//!
//! The link is held inline, not boxed: tokio allocates a task as one cell rounded up to
//! 128 bytes, and a pointer to a separate 432-byte link cost a 256-byte cell plus a
//! 448-byte allocation where the link inline makes one 640-byte cell. An active phase
//! takes the link by value (a copy of 432 bytes per wake-up) and gives it back.

use std::future::Future;
use std::mem::MaybeUninit;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep, sleep};
use tracing::Span;

use super::{End, Io, Link, READ_BUFFER_MIN, READ_BUFFER_STEP_MAX, Step, close};
use crate::transport::Duplex;

/// How long a parked connection keeps its active phase's allocation for the next
/// wake-up. Short: while clients connect by the thousand, the warm ones' memory adds up
/// (and what the allocator got back in the middle of the heap stays resident).
pub(super) const COOL_AFTER: Duration = Duration::from_millis(20);

/// How much one poll of a connection's task reads (in its parked wake-ups) before it
/// lets the other tasks of its worker run: two reads of the largest size.
///
/// A publisher whose socket always has data (its client sends as fast as the acks come
/// back) never waits: it reads, routes, acknowledges, parks and finds the next read
/// ready, over and over in one poll until tokio's budget runs out (about 6 ms with
/// 64 KiB messages). The subscribers it woke wait all that time in its worker's LIFO
/// slot, which the other worker cannot steal. Found with per-message timestamps in
/// `mqtt-load p2p --qos 1 --payload 65536 --publishers 4 --max-ahead 100`: a message
/// woke its waiting subscriber as it arrived, and the subscriber's task ran 6.6 ms
/// later, while the publisher's task read 35 more. A publisher of small messages reaches this share
/// only when it is as busy; docs/PERFORMANCE.md has what the limit gained and cost.
pub(super) const READ_PER_POLL: usize = 2 * READ_BUFFER_STEP_MAX;

/// How many times a connection parks cold before its parks keep the phase warm. A new
/// client's first wake-ups (CONNACK, SUBACK) are often its last for a long while, and
/// while clients connect by the thousand their warm phases (about 1.1 KB each) are freed
/// between the long-lived allocations of the connections after them, as holes that stay
/// resident (0.5 MB of 4.7 at 2000 connections). A busy connection passes this in its
/// first milliseconds.
const WARM_AFTER: u8 = 4;

/// Where a connection is in its life.
// The parked variant is the large one on purpose: it holds the link inline.
#[allow(clippy::large_enum_variant)]
enum Phase<S, H, F> {
    /// CONNECT and CONNACK; `None` when the connection ends there.
    Handshake(Pin<Box<H>>),
    /// Handling what woke it, until quiet again; `cool` is the timer of an earlier park,
    /// kept for the next.
    Active {
        phase: Pin<Box<F>>,
        cool: Option<Pin<Box<Sleep>>>,
    },
    /// Quiet: waiting for the client, the outbox or the control block. While warm it
    /// keeps the finished active phase (its allocation) and the timer that ends the
    /// warmth; cold, neither.
    Parked {
        link: Link<S>,
        warm: Option<Pin<Box<F>>>,
        cool: Option<Pin<Box<Sleep>>>,
    },
    /// DISCONNECT, flush, close and the session's hand-back.
    Closing(Pin<Box<dyn Future<Output = ()> + Send>>),
    /// Over.
    Done,
}

/// Whether a connection's parks keep their phase warm: from its [`WARM_AFTER`]th on.
#[derive(Debug, Default)]
struct Warmth {
    /// Parks so far, up to [`WARM_AFTER`].
    parks: u8,
}

impl Warmth {
    /// Counts a park; true when it is to be warm.
    fn park(&mut self) -> bool {
        if self.parks < WARM_AFTER {
            self.parks += 1;
            false
        } else {
            true
        }
    }
}

/// The future of one connection's task. `A` starts an active phase (a function item:
/// no bytes).
pub(super) struct Task<S, H, A, F> {
    span: Span,
    activate: A,
    warmth: Warmth,
    phase: Phase<S, H, F>,
}

impl<S, H, A, F> Task<S, H, A, F> {
    pub(super) fn new(span: Span, handshake: Pin<Box<H>>, activate: A) -> Self {
        Task {
            span,
            activate,
            warmth: Warmth::default(),
            phase: Phase::Handshake(handshake),
        }
    }
}

impl<S, H, A, F> Future for Task<S, H, A, F>
where
    S: Duplex,
    H: Future<Output = Option<Link<S>>>,
    A: Fn(Link<S>, bool) -> F + Unpin,
    F: Future<Output = (Link<S>, Step)>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut read = 0;
        loop {
            let entered = this.span.enter();
            let turn = poll_phases(
                &mut this.phase,
                &mut this.warmth,
                &this.activate,
                &mut read,
                cx,
            );
            drop(entered);
            match turn {
                Turn::Pending => return Poll::Pending,
                Turn::Done => return Poll::Ready(()),
                Turn::Cold => {
                    // A tracing span is a few hundred bytes in the subscriber's
                    // registry while it lives: a cold connection keeps none.
                    this.span = Span::none();
                    return Poll::Pending;
                }
                Turn::Woke(span) => this.span = span,
            }
        }
    }
}

/// How a turn of [`poll_phases`] ended.
enum Turn {
    Pending,
    Done,
    /// Waiting, parked cold: the span can go.
    Cold,
    /// A cold connection woke: its span again, for the active phase that follows.
    Woke(Span),
}

/// Runs the connection's phases until one waits ([`Turn::Pending`]), the connection
/// goes cold or wakes from cold (the caller drops or makes its span), or it ends.
/// `read` counts the bytes the parked connection's wake-ups read in this poll of the
/// task: at [`READ_PER_POLL`] it yields instead of looking for more.
fn poll_phases<S, H, A, F>(
    phase: &mut Phase<S, H, F>,
    warmth: &mut Warmth,
    activate: &A,
    read: &mut usize,
    cx: &mut Context<'_>,
) -> Turn
where
    S: Duplex,
    H: Future<Output = Option<Link<S>>>,
    A: Fn(Link<S>, bool) -> F,
    F: Future<Output = (Link<S>, Step)>,
{
    loop {
        let next = match phase {
            Phase::Handshake(f) => match f.as_mut().poll(cx) {
                Poll::Pending => return Turn::Pending,
                Poll::Ready(Some(link)) => Phase::Active {
                    phase: Box::pin(activate(link, true)),
                    cool: None,
                },
                Poll::Ready(None) => Phase::Done,
            },
            Phase::Active { phase: active, .. } => match active.as_mut().poll(cx) {
                Poll::Pending => return Turn::Pending,
                Poll::Ready((link, Step::Park)) => match std::mem::replace(phase, Phase::Done) {
                    Phase::Active { .. } if !warmth.park() => {
                        let mut link = link;
                        go_cold(&mut link);
                        Phase::Parked {
                            link,
                            warm: None,
                            cool: None,
                        }
                    }
                    Phase::Active { phase, cool } => {
                        let mut cool = cool.unwrap_or_else(|| Box::pin(sleep(COOL_AFTER)));
                        cool.as_mut().reset(Instant::now() + COOL_AFTER);
                        Phase::Parked {
                            link,
                            warm: Some(phase),
                            cool: Some(cool),
                        }
                    }
                    other => other,
                },
                Poll::Ready((link, Step::End(end))) => Phase::Closing(Box::pin(close(link, end))),
            },
            Phase::Parked { .. } if *read >= READ_PER_POLL => {
                yield_to_others(cx);
                return Turn::Pending;
            }
            Phase::Parked { link, warm, cool } => match poll_wake_contained(link, cx) {
                Poll::Ready(wake) => {
                    let Phase::Parked { link, warm, cool } = std::mem::replace(phase, Phase::Done)
                    else {
                        return Turn::Done;
                    };
                    let cold = warm.is_none();
                    let span = cold.then(|| link.span());
                    *phase = match wake {
                        Err(end) => Phase::Closing(Box::pin(close(link, end))),
                        Ok(bytes) => {
                            *read += bytes;
                            let next = activate(link, false);
                            let active = match warm {
                                Some(mut active) => {
                                    active.set(next);
                                    active
                                }
                                None => Box::pin(next),
                            };
                            Phase::Active {
                                phase: active,
                                cool,
                            }
                        }
                    };
                    match span {
                        Some(span) => return Turn::Woke(span),
                        None => continue,
                    }
                }
                Poll::Pending => {
                    let Some(timer) = cool else {
                        return Turn::Cold;
                    };
                    if timer.as_mut().poll(cx).is_pending() {
                        return Turn::Pending;
                    }
                    // Cold: nothing woke it for a while.
                    *warm = None;
                    *cool = None;
                    go_cold(link);
                    return Turn::Cold;
                }
            },
            Phase::Closing(f) => match f.as_mut().poll(cx) {
                Poll::Pending => return Turn::Pending,
                Poll::Ready(()) => Phase::Done,
            },
            Phase::Done => return Turn::Done,
        };
        *phase = next;
    }
}

/// Asks to be polled again after the worker's other ready tasks, as
/// `tokio::task::yield_now` does: its first poll hands the waker to the scheduler's
/// deferred list (outside a runtime it wakes at once). The future is dropped after that
/// poll; the wake-up it arranged stays.
fn yield_to_others(cx: &mut Context<'_>) {
    let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
}

/// What a connection gives back when its parks stop being warm: unused buffers and
/// empty queues.
fn go_cold<S>(link: &mut Link<S>) {
    release_buffers(&mut link.io);
    link.conn.release_queues();
}

/// A read buffer at its minimum size with nothing in it is given back (a parked read
/// uses the stack; the next active phase allocates one again), and so is an empty
/// write buffer (the next packet to send allocates one; the one that carried CONNACK
/// and SUBACK stayed with every idle connection).
fn release_buffers<S>(io: &mut Io<S>) {
    if io.rbuf.is_empty() && io.read_size() <= READ_BUFFER_MIN {
        io.rbuf = BytesMut::new();
    }
    io.wbuf.release(0);
}

/// Polls a parked connection's wake-up sources: `Ready(Ok(bytes read))` when something
/// is to be handled (the stop signal or a delivery: 0; bytes read into the buffer),
/// `Ready(Err)` when the socket ended or failed.
fn poll_wake<S: Duplex>(link: &mut Link<S>, cx: &mut Context<'_>) -> Poll<Result<usize, End>> {
    let Link { conn, io } = link;
    if conn.control.poll_stop(cx).is_ready() {
        return Poll::Ready(Ok(0));
    }
    if conn.can_pull(io) && conn.outbox_rx.poll_ready(cx).is_ready() {
        return Poll::Ready(Ok(0));
    }
    match ready!(poll_read(io, cx)) {
        Ok(0) => Poll::Ready(Err(End::Closed)),
        Ok(n) => {
            conn.broker.stats.bytes_received.add(n as u64);
            Poll::Ready(Ok(n))
        }
        Err(e) => Poll::Ready(Err(End::Io(e))),
    }
}

/// [`poll_wake`], a panic in it (in a TLS or WebSocket stream's read, say) ending the
/// connection through its close, as a panic in an active phase does (see `activate`).
fn poll_wake_contained<S: Duplex>(
    link: &mut Link<S>,
    cx: &mut Context<'_>,
) -> Poll<Result<usize, End>> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| poll_wake(link, cx))) {
        Ok(poll) => poll,
        Err(panic) => {
            // What the write buffer holds may end in half a packet.
            link.io.wbuf.clear();
            Poll::Ready(Err(End::Panicked(crate::contain::panic_message(
                panic.as_ref(),
            ))))
        }
    }
}

/// Reads what the client sent into the read buffer; with no buffer (a parked idle
/// connection), through a stack buffer of the minimum read size, so that a connection
/// holds no read buffer while it waits.
///
/// Most reads of a busy connection happen here, so a read that fills its room grows
/// the next one, as in the active loop (without that, reads stayed at 128 bytes and
/// p2p QoS 1 wrote 3.6 messages per `writev` instead of 40, at half the throughput).
fn poll_read<S: Duplex>(io: &mut Io<S>, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
    let n = ready!(poll_read_once(io, cx))?;
    if n > 0 {
        io.settle_read(n);
    }
    Poll::Ready(Ok(n))
}

fn poll_read_once<S: Duplex>(io: &mut Io<S>, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
    if io.rbuf.capacity() > 0 {
        io.prepare_read();
        let (mut reader, _) = io.stream.halves();
        return tokio_util::io::poll_read_buf(Pin::new(&mut reader), cx, &mut io.rbuf);
    }
    io.read_room = READ_BUFFER_MIN as u32;
    let mut stack = [MaybeUninit::<u8>::uninit(); READ_BUFFER_MIN];
    let mut buf = ReadBuf::uninit(&mut stack);
    let (mut reader, _) = io.stream.halves();
    ready!(Pin::new(&mut reader).poll_read(cx, &mut buf))?;
    let read = buf.filled();
    if !read.is_empty() {
        io.rbuf = BytesMut::with_capacity(READ_BUFFER_MIN);
        io.rbuf.extend_from_slice(read);
    }
    Poll::Ready(Ok(read.len()))
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::codec::Codec;
    use crate::transport::Split;

    fn io() -> (Io<Split<tokio::io::DuplexStream>>, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 16);
        (Io::new(Split::new(a), Codec::new(1 << 20)), b)
    }

    #[tokio::test]
    async fn a_parked_read_without_a_buffer_goes_through_the_stack_and_keeps_every_byte() {
        let (mut io, mut client) = io();
        release_buffers(&mut io);
        assert_eq!(
            io.rbuf.capacity(),
            0,
            "an idle connection holds no read buffer"
        );
        let sent: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        client.write_all(&sent).await.unwrap();
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let n = poll_fn(|cx| poll_read(&mut io, cx)).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&io.rbuf.split());
        }
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn parked_reads_that_fill_their_room_grow_the_next_one() {
        // The bug this guards against: reads made while parked kept the minimum size.
        let (mut io, mut client) = io();
        client.write_all(&vec![7u8; 8192]).await.unwrap();
        let mut rooms = Vec::new();
        for _ in 0..4 {
            poll_fn(|cx| poll_read(&mut io, cx)).await.unwrap();
            rooms.push(io.read_size());
            let _decoded = io.rbuf.split();
        }
        assert!(
            rooms.windows(2).all(|w| w[1] > w[0]),
            "each full read doubles the next: {rooms:?}"
        );
    }

    #[tokio::test]
    async fn the_end_of_the_stream_is_a_read_of_nothing() {
        let (mut io, client) = io();
        release_buffers(&mut io);
        drop(client);
        assert_eq!(poll_fn(|cx| poll_read(&mut io, cx)).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn going_cold_gives_back_empty_buffers_and_keeps_unsent_bytes() {
        let (mut io, _client) = io();
        io.wbuf.extend_from_slice(b"CONNACK");
        bytes::Buf::advance(&mut io.wbuf, 7);
        assert!(io.wbuf.capacity() > 0, "written out, still allocated");
        release_buffers(&mut io);
        assert_eq!((io.rbuf.capacity(), io.wbuf.capacity()), (0, 0));
        io.wbuf.extend_from_slice(b"unsent");
        io.rbuf.extend_from_slice(b"undecoded");
        release_buffers(&mut io);
        assert_eq!(
            (bytes::Buf::chunk(&io.wbuf), &io.rbuf[..]),
            (&b"unsent"[..], &b"undecoded"[..])
        );
    }

    #[test]
    fn a_connection_parks_cold_until_its_warm_after_th_park_and_warm_from_then_on() {
        let mut warmth = Warmth::default();
        let parks: Vec<bool> = (0..usize::from(WARM_AFTER) + 3)
            .map(|_| warmth.park())
            .collect();
        let cold = usize::from(WARM_AFTER);
        assert!(parks[..cold].iter().all(|warm| !warm), "{parks:?}");
        assert!(parks[cold..].iter().all(|warm| *warm), "{parks:?}");
        let mut warmth = Warmth { parks: WARM_AFTER };
        for _ in 0..1000 {
            assert!(warmth.park(), "stays warm, the count does not wrap");
        }
    }

    #[test]
    fn a_parked_task_is_its_link_and_two_pointers() {
        type Nothing = std::future::Ready<(Link<tokio::net::TcpStream>, Step)>;
        let size = size_of::<Phase<tokio::net::TcpStream, Nothing, Nothing>>();
        let link = size_of::<Link<tokio::net::TcpStream>>();
        assert!(size <= link + 16, "{size} against a {link}-byte link");
    }
}
