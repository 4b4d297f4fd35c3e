//! The per-session mapping cache: each buffer plane is mapped once per
//! (queue, index, plane, generation) and reused for every frame. A new
//! generation (the client reallocated) replaces the entry; the cache is dropped
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

#[derive(Debug, Default)]
pub struct BufferCache {
    entries: HashMap<(Queue, u32, u32), (u32, Mapping)>,
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
        match self.entries.entry(key) {
            Entry::Occupied(o) if o.get().0 == buf.generation => Ok(&mut o.into_mut().1),
            entry => {
                let mapping = map(transport, buf)?;
                Ok(match entry {
                    Entry::Occupied(mut o) => {
                        o.insert((buf.generation, mapping));
                        &mut o.into_mut().1
                    }
                    Entry::Vacant(v) => &mut v.insert((buf.generation, mapping)).1,
                })
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
        "session {}: mapped {:?}[{}] plane {} generation {} ({len} bytes)",
        buf.session,
        buf.queue,
        buf.index,
        buf.plane,
        buf.generation
    );
    Ok(mapping)
}
