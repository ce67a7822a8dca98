//! Counting what goes over a byte stream: bytes, and length-delimited frames
//! (samod's `tokio_io` transport prefixes every message with a 4-byte
//! big-endian length), per direction.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Byte and frame totals of one or more streams, shared with the reader.
#[derive(Debug, Default)]
pub struct WireCounters {
    sent: AtomicU64,
    received: AtomicU64,
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
}

impl WireCounters {
    /// Fresh counters, shareable.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Bytes written to the stream.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Bytes read from the stream.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Bytes both ways.
    pub fn total(&self) -> u64 {
        self.sent() + self.received()
    }

    /// Frames (messages) written.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent.load(Ordering::Relaxed)
    }

    /// Frames (messages) read.
    pub fn frames_received(&self) -> u64 {
        self.frames_received.load(Ordering::Relaxed)
    }
}

/// Finds frame boundaries in a byte stream of 4-byte length prefixes.
#[derive(Debug, Default)]
struct FrameScanner {
    header: [u8; 4],
    header_len: usize,
    body_left: u64,
}

impl FrameScanner {
    /// Feeds bytes; returns how many frames started in them.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut frames = 0;
        while !data.is_empty() {
            if self.body_left > 0 {
                let take = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.body_left -= take as u64;
                data = &data[take..];
                continue;
            }
            let take = (4 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 4 {
                self.header_len = 0;
                self.body_left = u64::from(u32::from_be_bytes(self.header));
                frames += 1;
            }
        }
        frames
    }
}

/// A stream that counts everything read from and written to it.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    counters: Arc<WireCounters>,
    reads: FrameScanner,
    writes: FrameScanner,
}

impl<S> Counted<S> {
    /// Wraps `inner`, adding to `counters`.
    pub fn new(inner: S, counters: Arc<WireCounters>) -> Self {
        Self {
            inner,
            counters,
            reads: FrameScanner::default(),
            writes: FrameScanner::default(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            this.counters
                .received
                .fetch_add(new.len() as u64, Ordering::Relaxed);
            let frames = this.reads.feed(new);
            this.counters
                .frames_received
                .fetch_add(frames, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            this.counters.sent.fetch_add(*n as u64, Ordering::Relaxed);
            let frames = this.writes.feed(&buf[..*n]);
            this.counters
                .frames_sent
                .fetch_add(frames, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_across_split_writes() {
        let mut scanner = FrameScanner::default();
        let mut bytes = Vec::new();
        for body in [&b"abc"[..], b"", b"hello world"] {
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(body);
        }
        let total: u64 = bytes.chunks(2).map(|c| scanner.feed(c)).sum();
        assert_eq!(total, 3);
        assert_eq!(FrameScanner::default().feed(&bytes), 3);
    }
}
