//! Zero-copy YUV420: the session's CAPTURE buffers, some of which may be
//! lent to FFmpeg as the memory it decodes a frame into.
//!
//! The pool is the one record of which CAPTURE buffers the daemon holds
//! (queued by the client, not yet returned with FRAME_DONE) and which of
//! them FFmpeg holds (lent). A buffer is free for the copy path or a new
//! loan only when it is queued and not lent. FFmpeg keeps reference frames
//! after it has output them, so a buffer given to the client may still be
//! lent; when the client queues it again it stays busy until FFmpeg drops
//! its last reference (the [`Lease`] is dropped, from whichever thread
//! FFmpeg does that on).
//!
//! Why lending is safe, and when it is refused (see daemon/README.md,
//! "Zero-copy YUV420"):
//! - FFmpeg's layout rules: the frame FFmpeg's own allocator made for the
//!   request fixes the line sizes; a buffer is lent only if its YUV420
//!   strides equal them exactly (so line sizes never change between lent
//!   and pooled frames, which some decoders do not support), its planes hold
//!   `avcodec_align_dimensions2` rows without overlapping, every plane start
//!   is aligned as FFmpeg asks, and the mapping has FFmpeg's over-read
//!   padding after the last plane.
//! - Progress: at most `known - reserve` buffers are lent at once, `known`
//!   being the buffers queued in the current CAPTURE epoch and `reserve` the
//!   minimum the daemon asked the client for. Lent buffers of earlier
//!   epochs and dma-bufs a DMABUF client swapped out count too: each can
//!   keep at most one queued buffer busy. The copy path thus always has as
//!   many buffers as without lending, whatever FFmpeg keeps as references
//!   for however long.
//! - Memory: a lease owns the mapping, so a buffer the client frees
//!   (REQBUFS 0, resolution change) stays valid memory until FFmpeg lets go.
//! - Which memory: a slot is one (index, generation, mem_seq). A DMABUF
//!   client that queues another dma-buf under an index gets a new slot with
//!   a new mapping; the old one is no client buffer any more and lives on
//!   only while FFmpeg holds it (never delivered in place, not counted in the
//!   budget), so nothing is written into, or shown from, the dma-buf the
//!   client swapped out. When the client later queues that dma-buf again,
//!   under any index, it is busy until FFmpeg lets go, like a buffer queued
//!   again under its own index (slots know their dma-buf by its inode).
//! - Take-back: the kernel's CAPTURE_RESET takes every CAPTURE buffer back,
//!   lent or not. [`CapturePool::reset`] forgets the unlent ones at once;
//!   a lent one stays known until FFmpeg drops it, and until then a frame
//!   thread may still be writing it or reading it as a reference. When the
//!   daemon has promised synchronous take-backs (HELLO with
//!   `DAEDALUS_HELLO_F_RELEASE_ACK`: the kernel's STREAMOFF waits for
//!   RELEASED so that no buffer is touched after it returns), the session
//!   therefore answers a CAPTURE_RESET only once [`CapturePool::lent_count`]
//!   is 0: if anything is lent it drops the pending frames that live in lent
//!   memory ([`CapturePool::in_lent_memory`]) and flushes the decoder,
//!   which waits for its frame threads and drops its references (a decoder
//!   that keeps some through a flush, as FFmpeg's VP9 does, is replaced by
//!   a fresh context), and decoding restarts at the next keyframe (see
//!   `session`). The copy path (NV12, P010, and YUV420 when nothing is
//!   lent) loses nothing.

use crate::mapping::{Identity, Mapping};
use daedalus_proto::{fourcc, Capture};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What FFmpeg asks for, in its own terms (from the `get_buffer2` call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRequest {
    /// Rows `avcodec_align_dimensions2` says the luma plane must have.
    pub aligned_height: usize,
    /// Line sizes FFmpeg's default allocator chose for Y, Cb, Cr.
    pub linesize: [usize; 3],
    /// Alignment FFmpeg wants for line sizes and plane starts (STRIDE_ALIGN).
    pub align: usize,
}

/// Bytes FFmpeg's own allocator adds after each plane (16 + STRIDE_ALIGN - 1
/// in libavcodec/get_buffer.c) for SIMD over-reads.
pub fn plane_padding(align: usize) -> usize {
    16 + align.saturating_sub(1)
}

/// Where the planes of a single-plane YUV420 CAPTURE buffer are (the layout
/// `format::layout` writes, and the kernel's UAPI header describes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanarLayout {
    pub offsets: [usize; 3],
    pub strides: [usize; 3],
    /// Rows of the luma plane (chroma: half, rounded up).
    pub rows: usize,
}

impl PlanarLayout {
    /// The layout of `cap`, if it is a single-plane YUV420 buffer.
    pub fn of(cap: &Capture) -> Option<PlanarLayout> {
        if cap.pixelformat != fourcc::YUV420 || cap.num_planes != 1 {
            return None;
        }
        let bpl = usize::try_from(cap.bytesperline[0]).ok()?;
        let rows = usize::try_from(cap.height).ok()?;
        if bpl % 2 != 0 {
            return None;
        }
        let cstride = bpl / 2;
        let cb = bpl.checked_mul(rows)?;
        let cr = cb.checked_add(cstride.checked_mul(rows.div_ceil(2))?)?;
        Some(PlanarLayout {
            offsets: [0, cb, cr],
            strides: [bpl, cstride, cstride],
            rows,
        })
    }

    /// Why FFmpeg may not decode `req` into this layout (None: it may),
    /// given `mapped` bytes of memory behind it.
    pub fn misfit(&self, req: &FrameRequest, mapped: usize) -> Option<&'static str> {
        if req.linesize != self.strides {
            return Some("line sizes differ from FFmpeg's");
        }
        if req.align == 0 || self.offsets.iter().any(|o| o % req.align != 0) {
            return Some("plane start not aligned");
        }
        if self.rows < req.aligned_height {
            return Some("fewer rows than avcodec_align_dimensions2");
        }
        let chroma_rows = req.aligned_height.div_ceil(2);
        let end = self.strides[2]
            .checked_mul(chroma_rows)
            .and_then(|n| n.checked_add(self.offsets[2]))
            .and_then(|n| n.checked_add(plane_padding(req.align)));
        match end {
            Some(end) if end <= mapped => None,
            _ => Some("no over-read padding after the last plane"),
        }
    }
}

/// A buffer's memory: index, allocation generation and mem_seq (another
/// dma-buf queued under the index).
type Key = (u32, u32, u32);

fn key_of(cap: &Capture) -> Key {
    (cap.index, cap.generation, cap.mem_seq)
}

struct Slot {
    cap: Capture,
    /// Queued by the client and not yet returned.
    queued: bool,
    /// FFmpeg holds it (a frame was decoded or is being decoded into it).
    lent: bool,
    /// Queued in the current CAPTURE epoch (counts for the lending budget).
    current: bool,
    /// SYNC_START issued for FFmpeg's writes, not yet ended.
    cpu_open: bool,
    /// For lending: the mapping and its start address.
    memory: Option<(Arc<Mutex<Mapping>>, usize)>,
    /// The dma-buf behind `memory` (see [`Mapping::identity`]).
    identity: Option<Identity>,
}

impl Slot {
    /// Ends the SYNC_START window of FFmpeg's writes, if one is open.
    fn end_cpu_access(&mut self) {
        if self.cpu_open {
            self.cpu_open = false;
            if let Some((m, _)) = &self.memory {
                m.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .end_cpu_access();
            }
        }
    }
}

struct State {
    slots: HashMap<Key, Slot>,
    /// Queued buffers in the order the client queued them.
    order: VecDeque<Key>,
}

struct Shared {
    state: Mutex<State>,
    /// CAPTURE buffers of the epoch never lent (see the module doc).
    reserve: usize,
}

impl State {
    /// FFmpeg holds the dma-buf of slot `key` through another slot (the
    /// client queued it again under another index, or again under this one
    /// after another dma-buf): not to be written or lent before it lets go.
    fn busy_elsewhere(&self, key: &Key) -> bool {
        let Some(id) = self.slots.get(key).and_then(|s| s.identity) else {
            return false;
        };
        self.slots
            .iter()
            .any(|(k, s)| k != key && s.lent && s.identity == Some(id))
    }

    /// Queued, not lent, and its memory not held by FFmpeg through another slot.
    fn free(&self, key: &Key) -> bool {
        self.slots.get(key).is_some_and(|s| s.queued && !s.lent) && !self.busy_elsewhere(key)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while locked leaves consistent plain data; keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The session's CAPTURE buffers (cheap to clone: shared).
#[derive(Clone)]
pub struct CapturePool {
    shared: Arc<Shared>,
}

/// A lent buffer as FFmpeg sees it; dropping it (FFmpeg's last reference
/// went away) makes the buffer available again.
pub struct Lease {
    shared: Arc<Shared>,
    key: Key,
    memory: Arc<Mutex<Mapping>>,
    /// Byte offsets of Y, Cb, Cr in the buffer.
    pub offsets: [usize; 3],
}

impl Lease {
    /// The buffer's memory: start and length (valid while the lease lives).
    pub fn memory(&self) -> (*mut u8, usize) {
        let m = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        (m.as_mut_ptr(), m.mapped_len())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let remove = match st.slots.get_mut(&self.key) {
            Some(slot) => {
                slot.lent = false;
                slot.end_cpu_access();
                !slot.queued && !slot.current
            }
            None => false,
        };
        if remove {
            st.slots.remove(&self.key);
        }
    }
}

/// A decoded frame that lives in a lent buffer the daemon still holds.
#[derive(Debug, Clone, Copy)]
pub struct HeldFrame {
    pub cap: Capture,
    pub layout: PlanarLayout,
    /// Start address of the buffer's memory.
    pub base: usize,
}

impl CapturePool {
    /// `reserve`: CAPTURE buffers per epoch that are never lent.
    pub fn new(reserve: usize) -> CapturePool {
        CapturePool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    slots: HashMap::new(),
                    order: VecDeque::new(),
                }),
                reserve,
            }),
        }
    }

    /// The client queued `cap`. `map` is asked for the buffer's mapping the
    /// first time a YUV420 buffer's memory is seen (None: it is never lent).
    /// Other memory queued under the index (a new mem_seq) supersedes the
    /// old slot, which stays only while FFmpeg holds it.
    pub fn queue(&self, cap: Capture, map: impl FnOnce(&Capture) -> Option<Mapping>) {
        let key = key_of(&cap);
        let mut st = self.shared.lock();
        let st = &mut *st;
        let superseded = |k: &Key| k.0 == key.0 && k.1 == key.1 && *k != key;
        st.order.retain(|k| !superseded(k));
        st.slots.retain(|k, s| {
            if !superseded(k) {
                return true;
            }
            s.queued = false;
            s.current = false;
            s.lent
        });
        let wants_memory = PlanarLayout::of(&cap).is_some();
        let slot = st.slots.entry(key).or_insert_with(|| Slot {
            cap,
            queued: false,
            lent: false,
            current: false,
            cpu_open: false,
            memory: None,
            identity: None,
        });
        if slot.memory.is_none() && wants_memory {
            slot.memory = map(&cap).map(|m| {
                slot.identity = m.identity();
                let base = m.as_mut_ptr() as usize;
                (Arc::new(Mutex::new(m)), base)
            });
        }
        slot.cap = cap;
        slot.current = true;
        if !slot.queued {
            slot.queued = true;
            st.order.push_back(key);
        }
    }

    /// CAPTURE streamed off: the client has every buffer back. Lent buffers
    /// stay known (their memory too) until FFmpeg drops them.
    pub fn reset(&self) {
        let mut st = self.shared.lock();
        st.order.clear();
        st.slots.retain(|_, s| {
            s.queued = false;
            s.current = false;
            s.lent
        });
    }

    /// Takes the first queued, unlent buffer `fits` accepts (for the copy
    /// path or an empty FRAME_DONE).
    pub fn take_free(&self, fits: impl Fn(&Capture) -> bool) -> Option<Capture> {
        let mut st = self.shared.lock();
        let st = &mut *st;
        let pos = st
            .order
            .iter()
            .position(|k| st.free(k) && st.slots.get(k).is_some_and(|s| fits(&s.cap)))?;
        let key = st.order.remove(pos)?;
        let slot = st.slots.get_mut(&key)?;
        slot.queued = false;
        Some(slot.cap)
    }

    /// A queued buffer nothing else may use at the moment: for logs.
    pub fn first_free(&self) -> Option<Capture> {
        let st = self.shared.lock();
        st.order
            .iter()
            .find(|k| st.free(k))
            .and_then(|k| st.slots.get(k))
            .map(|s| s.cap)
    }

    /// Every buffer the daemon holds, returned (SIGTERM).
    pub fn take_all(&self) -> Vec<Capture> {
        let mut st = self.shared.lock();
        let st = &mut *st;
        let keys: Vec<Key> = st.order.drain(..).collect();
        let mut caps = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(s) = st.slots.get_mut(&k) {
                s.queued = false;
                caps.push(s.cap);
            }
        }
        caps
    }

    /// The held buffer whose memory contains `addr` (a frame's first plane),
    /// if it is lent and still queued in the current epoch.
    pub fn holding(&self, addr: usize) -> Option<HeldFrame> {
        let st = self.shared.lock();
        st.slots.values().find_map(|s| {
            let (m, base) = s.memory.as_ref()?;
            let len = m.lock().unwrap_or_else(PoisonError::into_inner).len();
            let inside = addr >= *base && addr - *base < len;
            (inside && s.lent && s.queued && s.current).then_some(HeldFrame {
                cap: s.cap,
                layout: PlanarLayout::of(&s.cap)?,
                base: *base,
            })
        })
    }

    /// The frame in `held` goes to the client in its own buffer: the buffer
    /// leaves the queue (FFmpeg may keep it lent as a reference).
    pub fn deliver_in_place(&self, held: &HeldFrame) {
        let key = key_of(&held.cap);
        let mut st = self.shared.lock();
        st.order.retain(|k| *k != key);
        if let Some(slot) = st.slots.get_mut(&key) {
            slot.queued = false;
            slot.end_cpu_access();
        }
    }

    /// FFmpeg asks for frame memory: a queued, unlent YUV420 buffer that
    /// fits `req`, within the lending budget; None means FFmpeg's own
    /// buffer (the frame is copied out later).
    pub fn lend(&self, req: &FrameRequest) -> Option<Lease> {
        let mut st = self.shared.lock();
        let known = st.slots.values().filter(|s| s.current).count();
        // Every lent buffer, also of an earlier epoch or swapped out by a
        // DMABUF client: each can block one queued buffer (its own index,
        // or the index its dma-buf comes back under).
        let lent = st.slots.values().filter(|s| s.lent).count();
        if lent + 1 + self.shared.reserve > known {
            return None;
        }
        let st = &mut *st;
        let key = *st.order.iter().find(|k| {
            st.free(k)
                && st.slots.get(k).is_some_and(|s| {
                    s.memory.as_ref().is_some_and(|(m, _)| {
                        let mapped = m
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .mapped_len();
                        PlanarLayout::of(&s.cap).is_some_and(|l| l.misfit(req, mapped).is_none())
                    })
                })
        })?;
        let slot = st.slots.get_mut(&key)?;
        let layout = PlanarLayout::of(&slot.cap)?;
        let (memory, _) = slot.memory.clone()?;
        memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .begin_cpu_access();
        slot.lent = true;
        slot.cpu_open = true;
        Some(Lease {
            shared: self.shared.clone(),
            key,
            memory,
            offsets: layout.offsets,
        })
    }

    /// Buffers FFmpeg holds now (of any epoch).
    pub fn lent_count(&self) -> usize {
        self.shared.lock().slots.values().filter(|s| s.lent).count()
    }

    /// Whether `addr` lies in the memory of a lent buffer, of any epoch
    /// (a frame there holds a lease).
    pub fn in_lent_memory(&self, addr: usize) -> bool {
        let st = self.shared.lock();
        st.slots.values().any(|s| {
            s.lent
                && s.memory.as_ref().is_some_and(|(m, base)| {
                    let len = m.lock().unwrap_or_else(PoisonError::into_inner).len();
                    addr >= *base && addr - *base < len
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{test_memfd, Access};

    fn yuv420(index: u32, w: u32, h: u32) -> Capture {
        let bpl = w.next_multiple_of(64);
        let len = bpl * h + bpl * h.div_ceil(2);
        Capture {
            index,
            generation: 1,
            epoch: 1,
            pixelformat: fourcc::YUV420,
            width: w,
            height: h,
            num_planes: 1,
            mem_seq: 1,
            bytesperline: [bpl, 0, 0],
            length: [len, 0, 0],
        }
    }

    fn map(cap: &Capture) -> Option<Mapping> {
        let len = cap.length[0] as usize;
        Mapping::new(test_memfd(len), len, Access::Write).ok()
    }

    fn req(w: usize, aligned_height: usize) -> FrameRequest {
        FrameRequest {
            aligned_height,
            linesize: [w, w / 2, w / 2],
            align: 64,
        }
    }

    #[test]
    fn layout_of_yuv420_and_misfits() {
        let l = PlanarLayout::of(&yuv420(0, 640, 480)).unwrap();
        assert_eq!(l.offsets, [0, 640 * 480, 640 * 480 + 320 * 240]);
        assert_eq!(l.strides, [640, 320, 320]);
        let mapped = 640 * 720 + 4096;
        assert_eq!(l.misfit(&req(640, 480), mapped), None);
        // H.264 wants two more rows than a 480-row buffer has.
        assert!(l.misfit(&req(640, 482), mapped).is_some());
        // FFmpeg chose wider lines.
        assert!(l.misfit(&req(768, 480), mapped).is_some());
        // No room for the over-read padding after Cr.
        assert!(l.misfit(&req(640, 480), 640 * 720).is_some());
        let mut nv12 = yuv420(0, 640, 480);
        nv12.pixelformat = fourcc::NV12;
        assert!(PlanarLayout::of(&nv12).is_none());
    }

    #[test]
    fn lending_keeps_the_reserve_and_buffers_come_back() {
        let pool = CapturePool::new(2);
        for i in 0..4 {
            pool.queue(yuv420(i, 640, 480), map);
        }
        // mapped length is page rounded: 460800 -> room for the padding
        let r = req(640, 480);
        let a = pool.lend(&r).expect("first loan");
        let b = pool.lend(&r).expect("second loan");
        assert!(pool.lend(&r).is_none(), "2 of 4 buffers are the reserve");
        assert_eq!(pool.lent_count(), 2);
        // The copy path still gets the two unlent ones.
        let c = pool.take_free(|_| true).unwrap();
        assert_ne!(c.index, a.key.0);
        assert_ne!(c.index, b.key.0);
        // A frame decoded into `a` goes out in place; the client queues it
        // again while FFmpeg still references it: busy.
        let (base, _) = a.memory();
        let held = pool.holding(base as usize + 100).expect("held");
        assert_eq!(held.cap.index, a.key.0);
        pool.deliver_in_place(&held);
        pool.queue(held.cap, map);
        assert!(pool.take_free(|cap| cap.index == a.key.0).is_none());
        drop(a);
        assert_eq!(
            pool.take_free(|cap| cap.index == held.cap.index)
                .map(|c| c.index),
            Some(held.cap.index)
        );
        // After a reset a lent buffer is forgotten once FFmpeg drops it;
        // until then its memory still counts as lent.
        pool.reset();
        assert!(pool.take_free(|_| true).is_none());
        let (b_base, _) = b.memory();
        assert!(pool.in_lent_memory(b_base as usize + 1000));
        assert!(!pool.in_lent_memory(base as usize), "a's lease is gone");
        drop(b);
        assert!(!pool.in_lent_memory(b_base as usize + 1000));
        assert_eq!(pool.lent_count(), 0);
        assert!(pool.take_all().is_empty());
    }

    #[test]
    fn another_dmabuf_under_a_lent_index_is_new_memory() {
        let pool = CapturePool::new(2);
        for i in 0..4 {
            pool.queue(yuv420(i, 640, 480), map);
        }
        let r = req(640, 480);
        let a = pool.lend(&r).expect("loan");
        let (old_base, _) = a.memory();
        let held = pool.holding(old_base as usize).expect("held");
        pool.deliver_in_place(&held);
        // The client queues the index again with another dma-buf while
        // FFmpeg still keeps the old one as a reference.
        let mut swapped = held.cap;
        swapped.mem_seq = 2;
        let mut mapped_again = false;
        pool.queue(swapped, |cap| {
            mapped_again = true;
            map(cap)
        });
        assert!(mapped_again, "the new dma-buf is mapped");
        // Not busy: FFmpeg holds the old memory, not this one.
        let free = pool.take_free(|cap| cap.index == swapped.index);
        assert_eq!(free.map(|c| c.mem_seq), Some(2));
        pool.queue(swapped, map);
        // A frame still in the old memory is no longer in a client buffer.
        assert!(pool.holding(old_base as usize).is_none());
        // A new loan of that index hands out the new memory (the others
        // are taken by the copy path first).
        while pool.take_free(|cap| cap.index != swapped.index).is_some() {}
        let b = pool.lend(&r).expect("loan of the new memory");
        assert_eq!(b.key, (swapped.index, swapped.generation, 2));
        let (new_base, _) = b.memory();
        assert_ne!(new_base, old_base);
        assert_eq!(pool.lent_count(), 2);
        drop(a);
        assert_eq!(pool.lent_count(), 1, "the old memory goes with its lease");
        let held = pool.holding(new_base as usize).expect("new memory held");
        assert_eq!(held.cap.mem_seq, 2);
        drop(b);
    }

    #[test]
    fn a_swapped_out_dmabuf_queued_under_another_index_waits_for_ffmpeg() {
        let pool = CapturePool::new(2);
        let mut fds = Vec::new();
        let mut map_keep = |cap: &Capture| {
            let len = cap.length[0] as usize;
            let fd = test_memfd(len);
            fds.push(fd.try_clone().unwrap());
            Mapping::new(fd, len, Access::Write).ok()
        };
        for i in 0..5 {
            pool.queue(yuv420(i, 640, 480), &mut map_keep);
        }
        let a = pool.lend(&req(640, 480)).expect("loan");
        let index = a.key.0;
        let held = pool.holding(a.memory().0 as usize).expect("held");
        pool.deliver_in_place(&held);
        // The client queues the index with a new dma-buf, and the one FFmpeg
        // still reads (its fd: same inode) under another index.
        let mut swapped = held.cap;
        swapped.mem_seq = 2;
        pool.queue(swapped, map);
        let other = (index + 1) % 5;
        let mut reused = yuv420(other, 640, 480);
        reused.mem_seq = 2;
        let held_fd = fds[index as usize].try_clone().unwrap();
        pool.queue(reused, |cap| {
            Mapping::new(held_fd, cap.length[0] as usize, Access::Write).ok()
        });
        assert!(
            pool.take_free(|cap| cap.index == other).is_none(),
            "written while FFmpeg reads it"
        );
        assert!(pool.first_free().is_some_and(|c| c.index != other));
        drop(a);
        assert_eq!(
            pool.take_free(|cap| cap.index == other).map(|c| c.mem_seq),
            Some(2)
        );
    }
}
