//! Call guard for untrusted strategies: one trampoline pair per strategy slot that writes
//! "slot k is inside compute_swap / after_swap" to a cell before calling the strategy and
//! clears it afterwards. The scoring worker maps that cell from a file, so when the worker
//! dies (SIGSEGV, out of memory, killed by the watchdog) the parent still reads who was
//! running. The cost is two volatile stores and one indirect call per strategy call.
//!
//! Cell value: 0 = not inside a strategy, `slot * 4 + 1` = inside compute_swap,
//! `slot * 4 + 2` = inside after_swap. The next u32 counts calls entered (wrapping): a
//! watchdog that sees the same nonzero value and the same count for longer than its per-call
//! budget knows one call has not returned.

use std::ptr;

type ComputeFn = unsafe extern "C" fn(*const u8, usize) -> u64;
type AfterFn = unsafe extern "C" fn(*const u8, usize, *mut u8);

const SLOTS: usize = 16;
static mut CELL: *mut u32 = ptr::null_mut();
static mut COMPUTE: [usize; SLOTS] = [0; SLOTS];
static mut AFTER: [usize; SLOTS] = [0; SLOTS];

#[inline(always)]
unsafe fn enter(value: u32) {
    let cell = CELL;
    if !cell.is_null() {
        let count = cell.add(1);
        ptr::write_volatile(count, ptr::read_volatile(count).wrapping_add(1));
        ptr::write_volatile(cell, value);
    }
}

#[inline(always)]
unsafe fn mark(value: u32) {
    let cell = CELL;
    if !cell.is_null() {
        ptr::write_volatile(cell, value);
    }
}

macro_rules! slot {
    ($k:expr, $compute:ident, $after:ident) => {
        unsafe extern "C" fn $compute(data: *const u8, len: usize) -> u64 {
            enter(($k as u32) * 4 + 1);
            let f = std::mem::transmute::<usize, ComputeFn>(COMPUTE[$k]);
            let out = f(data, len);
            mark(0);
            out
        }
        unsafe extern "C" fn $after(data: *const u8, len: usize, storage: *mut u8) {
            enter(($k as u32) * 4 + 2);
            let f = std::mem::transmute::<usize, AfterFn>(AFTER[$k]);
            f(data, len, storage);
            mark(0);
        }
    };
}

slot!(0, c0, a0);
slot!(1, c1, a1);
slot!(2, c2, a2);
slot!(3, c3, a3);
slot!(4, c4, a4);
slot!(5, c5, a5);
slot!(6, c6, a6);
slot!(7, c7, a7);
slot!(8, c8, a8);
slot!(9, c9, a9);
slot!(10, c10, a10);
slot!(11, c11, a11);
slot!(12, c12, a12);
slot!(13, c13, a13);
slot!(14, c14, a14);
slot!(15, c15, a15);

static TRAMPOLINES: [(ComputeFn, AfterFn); SLOTS] = [
    (c0, a0), (c1, a1), (c2, a2), (c3, a3), (c4, a4), (c5, a5), (c6, a6), (c7, a7),
    (c8, a8), (c9, a9), (c10, a10), (c11, a11), (c12, a12), (c13, a13), (c14, a14), (c15, a15),
];

/// Where to record the current call (a u32 the caller keeps mapped; null disables).
#[no_mangle]
pub unsafe extern "C" fn guard_init(cell: *mut u32) {
    CELL = cell;
}

/// Routes slot `k` to the strategy's functions; writes the trampolines' addresses to
/// `out[0..2]` (compute, after). Returns 0, or -1 for a slot out of range.
#[no_mangle]
pub unsafe extern "C" fn guard_slot(k: u32, compute: usize, after: usize, out: *mut usize) -> i32 {
    let k = k as usize;
    if k >= SLOTS || out.is_null() {
        return -1;
    }
    COMPUTE[k] = compute;
    AFTER[k] = after;
    *out = TRAMPOLINES[k].0 as usize;
    *out.add(1) = TRAMPOLINES[k].1 as usize;
    0
}
