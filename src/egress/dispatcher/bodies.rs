//! Batch bodies, reused. A sealed batch is one body of up to `max_bytes` (100 KiB and
//! more), a size the allocator serves from fresh pages and hands back to the kernel soon
//! after the request is done: a batched sink spent about a twentieth of its CPU
//! faulting body pages in and zeroing them. A body's buffer comes back here when its
//! request (and every retry holding it) has dropped it, and the next batch is written
//! into it.
//!
//! What is kept is bounded: each batching sink keeps at most [`KEEP_BYTES`] of buffers
//! (idle too, outside `buffer_memory`), and never a buffer larger than that.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Buffer capacity kept for reuse at most, in all.
pub const KEEP_BYTES: usize = 4 << 20;

/// Buffers for batch bodies, shared with the bodies that will come back.
#[derive(Clone, Default)]
pub struct Bodies {
    free: Arc<Mutex<Free>>,
}

#[derive(Default)]
struct Free {
    buffers: Vec<Vec<u8>>,
    /// Capacity of `buffers`, summed.
    bytes: usize,
}

impl Bodies {
    /// A buffer to write a body into: one that came back, or a new empty one.
    pub fn take(&self) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        match free.buffers.pop() {
            Some(buffer) => {
                free.bytes -= buffer.capacity();
                buffer
            }
            None => Vec::new(),
        }
    }

    /// `body` as request bytes; its buffer comes back here once every copy is dropped.
    pub fn share(&self, body: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returning {
            body,
            home: self.clone(),
        })
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.bytes + buffer.capacity() <= KEEP_BYTES {
            buffer.clear();
            free.bytes += buffer.capacity();
            free.buffers.push(buffer);
        }
    }

    /// Capacity kept for reuse now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.lock().unwrap().bytes
    }
}

/// A body that gives its buffer back when the last `Bytes` sharing it is dropped.
struct Returning {
    body: Vec<u8>,
    home: Bodies,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_buffer_comes_back_when_its_last_copy_is_dropped() {
        let bodies = Bodies::default();
        let mut buffer = bodies.take();
        buffer.extend_from_slice(&[7; 1000]);
        let (ptr, capacity) = (buffer.as_ptr(), buffer.capacity());
        let body = bodies.share(buffer);
        let retry = body.clone();
        assert_eq!(&body[..], &[7; 1000][..]);
        drop(body);
        assert_eq!(bodies.kept(), 0, "a copy is still sending");
        drop(retry);
        assert_eq!(bodies.kept(), capacity);
        let again = bodies.take();
        assert_eq!(
            (again.as_ptr(), again.len()),
            (ptr, 0),
            "the same buffer, emptied"
        );
        assert_eq!(bodies.kept(), 0);
    }

    #[test]
    fn what_is_kept_stays_within_its_bound() {
        let bodies = Bodies::default();
        let bodies_of = |size: usize| {
            (0..3)
                .map(|_| bodies.share(vec![0; size]))
                .collect::<Vec<_>>()
        };
        drop(bodies_of(KEEP_BYTES / 2));
        assert!(bodies.kept() <= KEEP_BYTES, "{}", bodies.kept());
        assert!(bodies.kept() >= KEEP_BYTES / 2);
        let (a, b) = (bodies.take(), bodies.take());
        assert_eq!(bodies.kept(), 0);
        drop((a, b));
        drop(bodies_of(KEEP_BYTES + 1));
        assert_eq!(bodies.kept(), 0, "a buffer over the bound is never kept");
    }
}
