//! Heap memory held by the current thread, counted by the allocator.
//!
//! The resident size of the process is no measure of a data structure
//! built after others were freed (the allocator reuses their pages), so the
//! program counts instead: every allocation is passed to the system
//! allocator unchanged, and the thread that made it adds what glibc's
//! malloc takes for it (the request plus an 8-byte header, rounded up to
//! 16, at least 32 bytes) to a counter of its own. Counting per thread
//! keeps other threads (the test harness, tokio) out of a measurement, and
//! makes it the same on every run.
//!
//! The one `unsafe` in the program: a global allocator cannot be written
//! without it. It does nothing but forward to [`System`] and count.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The program's allocator: [`System`], counted.
pub struct Counting;

thread_local! {
    /// Bytes this thread holds: allocated minus freed, in malloc chunks.
    static HELD: Cell<i64> = const { Cell::new(0) };
}

/// The malloc chunk a request of `size` bytes takes (glibc, 64-bit).
fn chunk(size: usize) -> i64 {
    ((size + 8 + 15) & !15).max(32) as i64
}

fn add(bytes: i64) {
    // A thread being torn down has no counter any more; nothing measures then.
    let _ = HELD.try_with(|held| held.set(held.get() + bytes));
}

/// Bytes the current thread holds on the heap, as counted since it started.
pub fn held() -> i64 {
    HELD.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: every method forwards to `System` with the same arguments and
// returns its result; counting touches only a thread-local integer and
// never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            add(chunk(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(chunk(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) };
        add(-chunk(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller's
        // contract for `realloc` is passed on unchanged.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            add(chunk(new_size) - chunk(layout.size()));
        }
        new
    }
}
