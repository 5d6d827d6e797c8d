//! Byte streams through the [`Connector`](crate::Connector): the block
//! transfer (client ↔ datanode, datanode ↔ datanode, HDFS
//! DataTransferProtocol downstream) is a raw stream after the handshake, not
//! frames, so the fault rules act on every read and write of it instead.
//!
//! What each rule does to a stream, consulted at its connecting end for
//! both directions (the accepting end is not filtered, as for RPC):
//! - `Cut` (either direction): connecting fails; on an open stream every
//!   pending and later read and write fails at once with `ConnectionReset`.
//!   [`FaultNet`] wakes the streams a new rule cuts, so a partition also
//!   breaks idle streams (a reader waiting for an acknowledgement). The far
//!   end sees the connection end when its owner drops it on that error.
//!   A one-way cut thus behaves as a full one: a byte stream that loses
//!   bytes one way cannot stay in step, and TCP would reset it anyway.
//! - `Drop(p)`: each read or write resets the stream with probability `p`,
//!   for the same reason.
//! - `Delay(d)`: each read or write waits `d` first.
//! - `Reorder`: nothing (TCP keeps the bytes in order).
//!
//! A stream from [`Connector::direct`](crate::Connector::direct) carries no
//! filter state and costs one branch per call.

use crate::connector::{FaultNet, Link, Verdict};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The filter state of one filtered stream, shared by its two halves and
/// (weakly) by the [`FaultNet`] that may cut it.
#[derive(Debug)]
pub(crate) struct StreamState {
    link: Link,
    cut: AtomicBool,
    /// Woken when the stream is cut: the task waiting to read, and the one
    /// waiting to write.
    wakers: [Mutex<Option<Waker>>; 2],
}

const READ: usize = 0;
const WRITE: usize = 1;

impl StreamState {
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// Marks the stream cut and wakes whoever waits on it.
    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        for w in &self.wakers {
            if let Some(w) = w.lock().unwrap_or_else(|e| e.into_inner()).take() {
                w.wake();
            }
        }
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    fn cut_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("stream on link {} is cut", self.link.describe()),
        )
    }

    /// Registers `cx` to be woken by a cut, then says whether one happened
    /// (checked after registering, so no cut is missed).
    fn watch(&self, dir: usize, cx: &Context<'_>) -> bool {
        {
            let mut w = self.wakers[dir].lock().unwrap_or_else(|e| e.into_inner());
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        self.is_cut()
    }
}

/// The filter in front of one direction of a stream.
#[derive(Debug)]
struct Gate {
    state: Option<Arc<StreamState>>,
    dir: usize,
    /// A delay being waited out before the current operation.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The current operation has its verdict (it may still be pending).
    passed: bool,
}

impl Gate {
    fn new(state: Option<Arc<StreamState>>, dir: usize) -> Self {
        Gate {
            state,
            dir,
            sleep: None,
            passed: false,
        }
    }

    /// Before an operation: `Ready(Ok)` to go ahead, `Ready(Err)` when the
    /// stream is (now) cut, `Pending` while a delay runs.
    fn poll_pass(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(st) = &self.state else {
            return Poll::Ready(Ok(()));
        };
        if !self.passed {
            if let Some(s) = self.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
                self.passed = true;
            } else {
                let link = st.link();
                let v = if self.dir == WRITE {
                    link.outgoing()
                } else {
                    link.incoming()
                };
                match v {
                    Verdict::Pass | Verdict::Reorder => self.passed = true,
                    Verdict::Cut | Verdict::Drop => st.cut(),
                    Verdict::Delay(d) => {
                        self.sleep = Some(Box::pin(tokio::time::sleep(d)));
                        return self.poll_pass(cx);
                    }
                }
            }
        }
        if st.watch(self.dir, cx) {
            return Poll::Ready(Err(st.cut_error()));
        }
        Poll::Ready(Ok(()))
    }

    /// After an operation completed: the next one gets its own verdict.
    fn done<T>(&mut self, p: Poll<T>) -> Poll<T> {
        if p.is_ready() {
            self.passed = false;
        }
        p
    }

    /// Fails at once when cut (for flush and shutdown, which carry no data).
    fn check(&self) -> io::Result<()> {
        match &self.state {
            Some(st) if st.is_cut() => Err(st.cut_error()),
            _ => Ok(()),
        }
    }
}

macro_rules! filtered_io {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let this = &mut *self;
                std::task::ready!(this.rd.poll_pass(cx))?;
                let p = Pin::new(&mut this.inner).poll_read(cx, buf);
                this.rd.done(p)
            }
        }
    };
    ($t:ty, write) => {
        impl AsyncWrite for $t {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let this = &mut *self;
                std::task::ready!(this.wr.poll_pass(cx))?;
                let p = Pin::new(&mut this.inner).poll_write(cx, buf);
                this.wr.done(p)
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.wr.check()?;
                Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                self.wr.check()?;
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

/// A connection opened through a [`Connector`](crate::Connector), its
/// link's rules applied to every read and write (see the module docs).
#[derive(Debug)]
pub struct LinkStream {
    inner: TcpStream,
    rd: Gate,
    wr: Gate,
}

filtered_io!(LinkStream);
filtered_io!(LinkStream, write);

impl LinkStream {
    /// Wraps a connected stream; registers it with `link`'s net (if any) so
    /// that a rule added later can cut it.
    pub(crate) fn new(inner: TcpStream, link: Link, net: Option<&Arc<FaultNet>>) -> Self {
        let state = net.map(|n| {
            let st = Arc::new(StreamState {
                link,
                cut: AtomicBool::new(false),
                wakers: Default::default(),
            });
            n.register(&st);
            st
        });
        LinkStream {
            inner,
            rd: Gate::new(state.clone(), READ),
            wr: Gate::new(state, WRITE),
        }
    }

    /// A stream outside any fault net.
    pub fn unfiltered(inner: TcpStream) -> Self {
        LinkStream::new(inner, Link::none(), None)
    }

    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }

    /// Splits into halves that keep the filters.
    pub fn into_split(self) -> (LinkReadHalf, LinkWriteHalf) {
        let (r, w) = self.inner.into_split();
        (
            LinkReadHalf {
                inner: r,
                rd: self.rd,
            },
            LinkWriteHalf {
                inner: w,
                wr: self.wr,
            },
        )
    }
}

/// The reading half of a [`LinkStream`].
#[derive(Debug)]
pub struct LinkReadHalf {
    inner: OwnedReadHalf,
    rd: Gate,
}

filtered_io!(LinkReadHalf);

impl LinkReadHalf {
    /// Reads what has already arrived without waiting (`WouldBlock` when
    /// nothing has); fails when the stream is cut.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.rd.check()?;
        self.inner.try_read(buf)
    }
}

/// The writing half of a [`LinkStream`].
#[derive(Debug)]
pub struct LinkWriteHalf {
    inner: OwnedWriteHalf,
    wr: Gate,
}

filtered_io!(LinkWriteHalf, write);
