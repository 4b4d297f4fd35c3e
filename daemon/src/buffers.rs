//! The per-session mapping cache: each buffer plane is mapped once per
//! (queue, index, plane, generation, mem_seq) and reused for every frame. A
//! new generation (the client reallocated) or mem_seq (a DMABUF client queued
//! another dma-buf under the index) replaces the entry, so the frame lands in
//! the memory queued now and the old dma-buf is let go; the cache is dropped
//! with the session.

use crate::mapping::{Access, MapError, Mapping};
use crate::transport::Transport;
use daedalus_proto::{BufferRef, ChannelError, Queue};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use thiserror::Error;

/// Upper bound on cached planes: vb2 allows at most 64 buffers per queue and
/// a session has two queues of up to 3 planes. Beyond it the cache is reset
/// rather than grown (a hostile index cannot exhaust address space).
const MAX_ENTRIES: usize = 2 * 64 * 3;

#[derive(Debug, Error)]
pub enum BufferError {
    #[error("cannot export buffer {queue:?}[{index}] plane {plane}: {source}")]
    Export {
        queue: Queue,
        index: u32,
        plane: u32,
        source: ChannelError,
    },
    #[error("cannot map buffer {queue:?}[{index}] plane {plane}: {source}")]
    Map {
        queue: Queue,
        index: u32,
        plane: u32,
        source: MapError,
    },
}

impl BufferError {
    /// The kernel no longer has the buffer for the daemon: the client took it
    /// back (STREAMOFF: ESTALE) or freed it (REQBUFS: EINVAL for an index that
    /// no longer exists) after queuing it, and the CAPTURE_RESET saying so is
    /// still on its way. Indices and planes come from the kernel's own
    /// messages, so EINVAL here means the buffer is gone, not a bad request.
    pub fn buffer_gone(&self) -> bool {
        matches!(
            self,
            BufferError::Export {
                source: ChannelError::Stale | ChannelError::Io(nix::errno::Errno::EINVAL),
                ..
            }
        )
    }
}

/// A buffer plane: queue, index, plane.
type Plane = (Queue, u32, u32);
/// Which memory a mapping is of: generation, mem_seq.
type Memory = (u32, u32);

#[derive(Debug, Default)]
pub struct BufferCache {
    entries: HashMap<Plane, (Memory, Mapping)>,
}

impl BufferCache {
    /// The mapping of one plane, mapping it on first use.
    pub fn get(
        &mut self,
        transport: &dyn Transport,
        buf: BufferRef,
    ) -> Result<&mut Mapping, BufferError> {
        let key = (buf.queue, buf.index, buf.plane);
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
            self.entries.clear();
        }
        let memory = (buf.generation, buf.mem_seq);
        // A mapping of other memory goes before the new one is made: it may
        // hold the last reference to a dma-buf the client has let go.
        if self.entries.get(&key).is_some_and(|(m, _)| *m != memory) {
            self.entries.remove(&key);
        }
        match self.entries.entry(key) {
            Entry::Occupied(o) => Ok(&mut o.into_mut().1),
            Entry::Vacant(v) => {
                let mapping = map(transport, buf)?;
                Ok(&mut v.insert((memory, mapping)).1)
            }
        }
    }

    /// Drops the mappings of a queue whose buffers were reallocated.
    pub fn forget_queue(&mut self, queue: Queue) {
        self.entries.retain(|(q, _, _), _| *q != queue);
    }
}

fn map(transport: &dyn Transport, buf: BufferRef) -> Result<Mapping, BufferError> {
    let (fd, len) = transport
        .buffer_fd(buf)
        .map_err(|source| BufferError::Export {
            queue: buf.queue,
            index: buf.index,
            plane: buf.plane,
            source,
        })?;
    let access = match buf.queue {
        Queue::Output => Access::Read,
        Queue::Capture => Access::Write,
    };
    let mapping = Mapping::new(fd, len as usize, access).map_err(|source| BufferError::Map {
        queue: buf.queue,
        index: buf.index,
        plane: buf.plane,
        source,
    })?;
    log::debug!(
        "session {}: mapped {:?}[{}] plane {} generation {} mem_seq {} ({len} bytes)",
        buf.session,
        buf.queue,
        buf.index,
        buf.plane,
        buf.generation,
        buf.mem_seq
    );
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::test_memfd;
    use daedalus_proto::DaemonMsg;
    use std::os::fd::OwnedFd;
    use std::sync::Mutex;

    /// Hands out a new memfd per export, holding one byte: the export's number.
    #[derive(Default)]
    struct Exports {
        count: Mutex<u8>,
        asked: Mutex<Vec<BufferRef>>,
    }

    impl Transport for Exports {
        fn send(&self, _: &DaemonMsg) -> Result<(), ChannelError> {
            Ok(())
        }
        fn buffer_fd(&self, buf: BufferRef) -> Result<(OwnedFd, u32), ChannelError> {
            let mut n = self.count.lock().unwrap();
            *n += 1;
            self.asked.lock().unwrap().push(buf);
            let fd = test_memfd(4096);
            let mut m =
                crate::mapping::Mapping::new(fd.try_clone().unwrap(), 4096, Access::Write).unwrap();
            m.bytes_mut().unwrap()[0] = *n;
            Ok((fd, 4096))
        }
    }

    fn buf(queue: Queue, generation: u32, mem_seq: u32) -> BufferRef {
        BufferRef {
            session: 1,
            queue,
            index: 2,
            plane: 0,
            generation,
            mem_seq,
        }
    }

    #[test]
    fn another_mem_seq_maps_the_buffer_again() {
        let t = Exports::default();
        let mut cache = BufferCache::default();
        let first = |c: &mut BufferCache, b| c.get(&t, b).unwrap().bytes()[0];
        for queue in [Queue::Output, Queue::Capture] {
            let base = first(&mut cache, buf(queue, 1, 1));
            // Same memory: the cached mapping, no new export.
            assert_eq!(first(&mut cache, buf(queue, 1, 1)), base);
            // Another dma-buf under the index: exported and mapped again,
            // the export asked for with that mem_seq.
            assert_eq!(first(&mut cache, buf(queue, 1, 2)), base + 1);
            assert_eq!(t.asked.lock().unwrap().last().unwrap().mem_seq, 2);
            assert_eq!(first(&mut cache, buf(queue, 1, 2)), base + 1);
            // A reallocation, mem_seq starting over.
            assert_eq!(first(&mut cache, buf(queue, 2, 1)), base + 2);
        }
        assert_eq!(*t.count.lock().unwrap(), 6);
        assert_eq!(
            cache.entries.len(),
            2,
            "one entry per (queue, index, plane)"
        );
    }
}
