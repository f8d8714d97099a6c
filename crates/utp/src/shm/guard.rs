//! The SIGBUS guard: a peer that truncates a file under our mapping must not
//! kill the process (`docs/shm-layout.md` section 8).
//!
//! Mappings a peer could shrink are registered in a fixed table of
//! [`SLOTS`] entries (atomics only, so the signal handler can read it). The
//! process-wide handler, installed once, looks the faulting address up: if
//! it lies in a registered mapping it maps anonymous zero pages over the
//! whole mapping (`MAP_FIXED`), sets the entry's poisoned flag and returns,
//! so the access completes; the link sees the flag and ends with an error.
//! Any other SIGBUS goes to the previous handler, or, if there was none, the
//! default action is restored and the fault happens again (and kills the
//! process as it would have without utp).
//!
//! Everything the handler does is async-signal-safe: atomic loads and
//! stores, `mmap` and `sigaction` system calls, no allocation, no lock.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many mappings can be guarded at once.
pub const SLOTS: usize = 256;

const FREE: usize = 0;
const CLAIMED: usize = 1;
const ACTIVE: usize = 2;

struct Slot {
    state: AtomicUsize,
    start: AtomicUsize,
    len: AtomicUsize,
    poisoned: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    state: AtomicUsize::new(FREE),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    poisoned: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();
/// The handler that was installed before ours (written once, before ours is
/// installed; only read afterwards).
static mut PREVIOUS: Option<libc::sigaction> = None;

/// A registered mapping; unregisters on drop.
///
// Invariant: `index` is a slot this value claimed and set ACTIVE.
#[derive(Debug)]
pub struct Guard {
    index: usize,
}

impl Guard {
    /// Registers `start..start+len` (a live mapping, page aligned). Returns
    /// `None` if the table is full: the mapping is then unguarded, which the
    /// caller logs.
    pub fn register(start: *mut u8, len: usize) -> Option<Guard> {
        install();
        for (index, slot) in TABLE.iter().enumerate() {
            if slot
                .state
                .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.start.store(start as usize, Ordering::Relaxed);
                slot.len.store(len, Ordering::Relaxed);
                slot.poisoned.store(false, Ordering::Relaxed);
                slot.state.store(ACTIVE, Ordering::Release);
                return Some(Guard { index });
            }
        }
        None
    }

    /// Whether a fault in this mapping was repaired (the peer truncated it).
    #[inline]
    pub fn poisoned(&self) -> bool {
        TABLE[self.index].poisoned.load(Ordering::Relaxed)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let slot = &TABLE[self.index];
        slot.state.store(CLAIMED, Ordering::Release);
        slot.start.store(0, Ordering::Relaxed);
        slot.len.store(0, Ordering::Relaxed);
        slot.state.store(FREE, Ordering::Release);
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sigaction structs are plain data for which zero is valid;
        // we read the current action, store it (before our handler exists,
        // so nothing reads PREVIOUS concurrently), then install ours with
        // SA_SIGINFO so the handler gets the faulting address.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                log::warn!("utp: cannot read the SIGBUS action; shm regions are unguarded");
                return;
            }
            PREVIOUS = Some(old);
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            if libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut()) != 0 {
                log::warn!("utp: cannot install the SIGBUS guard; shm regions are unguarded");
            }
        }
    });
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in TABLE.iter() {
        if slot.state.load(Ordering::Acquire) != ACTIVE {
            continue;
        }
        let (start, len) = (
            slot.start.load(Ordering::Relaxed),
            slot.len.load(Ordering::Relaxed),
        );
        if addr >= start && addr - start < len {
            // SAFETY: `start..start+len` is a mapping utp registered and
            // still owns (the slot is ACTIVE until the owner drops it,
            // before unmapping); replacing it with private anonymous memory
            // keeps every pointer into it valid. mmap is async-signal-safe.
            let done = unsafe {
                libc::mmap(
                    start as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if done != libc::MAP_FAILED {
                slot.poisoned.store(true, Ordering::Relaxed);
                return;
            }
            break;
        }
    }
    // Not ours (or the repair failed): behave as if utp were not there.
    // SAFETY: PREVIOUS was written before this handler was installed and is
    // never written again, so reading it here is not a data race.
    let previous = unsafe { *std::ptr::addr_of!(PREVIOUS) };
    if let Some(prev) = previous {
        let handler = prev.sa_sigaction;
        if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO,
                // so it has this signature; we pass the kernel's arguments on.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(handler) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a handler without SA_SIGINFO takes the signal number.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
                f(sig);
            }
            return;
        }
    }
    // Default action: restore it and return; the faulting instruction runs
    // again and the kernel delivers SIGBUS with the default action (a
    // synchronous fault cannot be ignored).
    // SAFETY: a zeroed sigaction with SIG_DFL is valid; sigaction is
    // async-signal-safe.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
    }
}
