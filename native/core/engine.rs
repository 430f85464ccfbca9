//! propamm-jax native scoring core.
//!
//! Why this exists: official scoring must reproduce the reference engine's f64 bits, and its
//! solvers call a strategy's `compute_swap` several hundred times per simulated step, one call
//! depending on the last. Through a JAX host callback (~130 us each) that is ~100x too slow, so
//! the whole reference step runs here, in Rust, with the same integer casts and float ops
//! (no FMA contraction, glibc exp/ln). Randomness is not drawn here: the market tape
//! (fair prices and retail orders) is generated once in Python and passed in.
//!
//! Everything profile-specific is switched on `Profile` in the functions below; nothing else
//! in the project re-implements these semantics natively.

use std::slice;

const SCALE_F: f64 = 1_000_000_000.0;
const SCALE: u128 = 1_000_000_000;
const STORAGE: usize = 1024;
const COMPETITOR_SLOTS: usize = 8;
const POOL_PURE: u32 = 1;

pub type ComputeSwapFn = unsafe extern "C" fn(*const u8, usize) -> u64;
pub type AfterSwapFn = unsafe extern "C" fn(*const u8, usize, *mut u8);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Profile {
    Reference,
    Corrected,
}

#[repr(C)]
pub struct PammConfig {
    pub steps: u64,
    pub epoch_len: u64,
    pub base_reserve_x: u64,
    pub base_reserve_y: u64,
    pub lambda: f64,
    pub min_capital_weight: f64,
    pub softmax_temperature: f64,
    pub arb_profit_floor: f64,
    pub profile: u32,
    pub n_strategies: u32,
    pub trace_steps: u64,
    /// Non-zero: time every strategy call (for the benchmark's callback share).
    pub measure_calls: u64,
}

/// One strategy slot: a compiled strategy (kind 0) or a built-in constant-product pool with
/// integer bps fees on the input (kind 1, used to run parametric pools on reference solvers).
/// `initial_storage`: null (official scoring, the reference's zeroed storage) or 1024 bytes
/// the strategy's storage starts from. Training only: it lets one compiled library of a
/// policy family read each population member's parameters from its storage.
#[repr(C)]
pub struct PammPool {
    pub kind: u32,
    pub fee_buy_bps: u32,
    pub fee_sell_bps: u32,
    /// Bit 0 (`POOL_PURE`, training only): the strategy's quotes depend on their payload
    /// alone, so the router may reuse them within one order (`ProbeTree`). Official scoring
    /// never sets it: the reference calls untrusted code the same way every time.
    pub flags: u32,
    pub compute_swap: usize,
    pub after_swap: usize,
    pub initial_storage: *const u8,
}

#[repr(C)]
pub struct PammMarket {
    pub norm_fee_bps: u32,
    pub pad: u32,
    pub norm_liquidity_mult: f64,
    pub fair_price: *const f64,
    pub order_start: *const i64,
    pub order_is_buy: *const u8,
    pub order_size: *const f64,
}

/// Output buffers, all owned by the caller. Epoch arrays are [strategy][epoch]; traces are
/// [step][amm][field] with u64 fields (reserve_x, reserve_y, storage hash) and f64 fields
/// (cumulative edge, capital weight).
#[repr(C)]
pub struct PammOut {
    pub final_edge: *mut f64,
    pub final_capital_weight: *mut f64,
    pub normalizer_edge: *mut f64,
    pub epoch_edge: *mut f64,
    pub epoch_trade_count: *mut u64,
    pub epoch_score: *mut f64,
    pub epochs_written: *mut u64,
    pub trace_u64: *mut u64,
    pub trace_f64: *mut f64,
    /// [number of strategy calls, nanoseconds inside them] (filled when measuring).
    pub call_stats: *mut u64,
}

#[derive(Clone)]
struct Amm {
    rx: u64,
    ry: u64,
    storage: [u8; STORAGE],
    cumulative_edge: f64,
    epoch_edge: f64,
    epoch_trades: u64,
    capital_weight: f64,
}

impl Amm {
    fn new(rx: u64, ry: u64, weight: f64) -> Self {
        Amm {
            rx,
            ry,
            storage: [0u8; STORAGE],
            cumulative_edge: 0.0,
            epoch_edge: 0.0,
            epoch_trades: 0,
            capital_weight: weight,
        }
    }

    fn spot(&self) -> f64 {
        self.ry as f64 / self.rx as f64
    }

    /// Books a trade at the fair price and moves reserves. `is_buy`: the trader buys X
    /// (pays Y in, takes X out).
    fn execute(&mut self, is_buy: bool, input: u64, output: u64, fair: f64) {
        let (amount_x, amount_y) = if is_buy { (output, input) } else { (input, output) };
        let ax = amount_x as f64 / SCALE_F;
        let ay = amount_y as f64 / SCALE_F;
        let edge = if is_buy { ay - ax * fair } else { ax * fair - ay };
        self.cumulative_edge += edge;
        self.epoch_edge += edge;
        self.epoch_trades += 1;
        if is_buy {
            self.ry = self.ry.saturating_add(input);
            self.rx = self.rx.saturating_sub(output);
        } else {
            self.rx = self.rx.saturating_add(input);
            self.ry = self.ry.saturating_sub(output);
        }
    }
}

/// floor(a * b / d), d > 0. Why not plain u128 arithmetic: u128 division is a library call
/// (`__udivti3`), and the normalizer's quotes run a few hundred times per order. When the
/// divisor and the quotient fit in 64 bits (always, for the quotes below), x86-64's `div`
/// gives the same floor directly.
#[inline]
fn mul_div(a: u64, b: u64, d: u128) -> u128 {
    let p = a as u128 * b as u128;
    if d <= u64::MAX as u128 && ((p >> 64) as u64) < d as u64 {
        div_128_by_64(p, d as u64) as u128
    } else {
        p / d
    }
}

/// floor(n / d) for n < d * 2^64 (the quotient fits in 64 bits).
#[cfg(target_arch = "x86_64")]
#[inline]
fn div_128_by_64(n: u128, d: u64) -> u64 {
    let quotient: u64;
    unsafe {
        std::arch::asm!("div {d}", d = in(reg) d, inout("rax") n as u64 => quotient,
                        inout("rdx") (n >> 64) as u64 => _, options(pure, nomem, nostack));
    }
    quotient
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn div_128_by_64(n: u128, d: u64) -> u64 {
    (n / d as u128) as u64
}

/// floor(input * gamma / 10 000) for gamma <= 10 000, in 64-bit operations: with
/// input = 10 000 a + b, it is a * gamma + floor(b * gamma / 10 000), and a * gamma < 2^64.
#[inline]
fn scale_bps(input: u64, gamma: u64) -> u128 {
    (input / 10_000 * gamma + input % 10_000 * gamma / 10_000) as u128
}

fn cpamm_quote(input: u64, r_in: u64, r_out: u64, fee_bps: u32) -> u64 {
    if input == 0 || r_in == 0 || r_out == 0 {
        return 0;
    }
    let eff = scale_bps(input, (10_000 - fee_bps.min(10_000)) as u64);
    mul_div(r_out, eff as u64, r_in as u128 + eff) as u64
}

/// The normalizer's quote: the reference's own CPAMM (no zero-input guard).
fn normalizer_quote(input: u64, r_in: u64, r_out: u64, fee_bps: u32) -> u64 {
    let eff = scale_bps(input, (10_000 - fee_bps) as u64);
    if r_in as u128 + eff == 0 {
        return 0;
    }
    mul_div(r_out, eff as u64, r_in as u128 + eff) as u64
}

use std::cell::{Cell, RefCell};
use std::time::Instant;

/// Counts and times strategy calls when the benchmark asks for it (one per strategy slot,
/// summed at the end; no thread-local lookup on the hot path).
struct Meter {
    on: bool,
    calls: Cell<u64>,
    ns: Cell<u64>,
}

impl Meter {
    #[inline]
    fn run<T>(&self, call: impl FnOnce() -> T) -> T {
        if !self.on {
            return call();
        }
        let start = Instant::now();
        let out = call();
        self.calls.set(self.calls.get() + 1);
        self.ns.set(self.ns.get() + start.elapsed().as_nanos() as u64);
        out
    }
}

/// The 1049-byte compute_swap payload of one strategy slot, kept between calls.
///
/// Why: the reference builds a fresh payload (tag, input, reserves, then a copy of the 1024
/// bytes of storage) for every call, and a simulation makes millions of calls; copying the
/// storage each time was the core's largest cost. Here the payload lives in a page mapped
/// twice (Linux memfd): the core writes through one view, and the strategy is handed the
/// other, which is read-only. The storage part is rewritten only after a hook (the only
/// place storage changes), the header on every call. A strategy therefore sees, call for
/// call, exactly the bytes the reference would give it; one that writes into its input
/// (a `*const` pointer) faults and is reported as a crash instead of being fed its own
/// writes. Where the two views cannot be had, `shared` is false and every call rewrites the
/// whole payload, as the reference does.
struct QuotePayload {
    write: *mut u8,
    read: *const u8,
    shared: bool,
    storage_synced: Cell<bool>,
}

const PAYLOAD: usize = 25 + STORAGE;
const PAGE: usize = 4096;

impl QuotePayload {
    /// Writes the header (and the storage if it may differ from the last call's).
    #[inline(always)]
    fn fill(&self, is_buy: bool, input: u64, rx: u64, ry: u64, storage: &[u8; STORAGE]) {
        let mut head = [0u8; 25];
        head[0] = if is_buy { 0 } else { 1 };
        head[1..9].copy_from_slice(&input.to_le_bytes());
        head[9..17].copy_from_slice(&rx.to_le_bytes());
        head[17..25].copy_from_slice(&ry.to_le_bytes());
        unsafe {
            std::ptr::copy_nonoverlapping(head.as_ptr(), self.write, 25);
            if !self.shared || !self.storage_synced.get() {
                std::ptr::copy_nonoverlapping(storage.as_ptr(), self.write.add(25), STORAGE);
                self.storage_synced.set(self.shared);
            }
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// Pages holding every slot's payload: a read-write and a read-only view of one memfd
/// (Linux), or a private buffer elsewhere. Unmapped when the simulation ends.
struct PayloadPages {
    write: *mut u8,
    read: *const u8,
    len: usize,
    shared: bool,
    /// Owns the private buffer when `shared` is false.
    _fallback: Vec<u8>,
}

#[cfg(target_os = "linux")]
mod pages {
    use std::ffi::{c_char, c_int, c_uint, c_void};
    extern "C" {
        fn memfd_create(name: *const c_char, flags: c_uint) -> c_int;
        fn ftruncate(fd: c_int, length: i64) -> c_int;
        fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) -> *mut c_void;
        pub fn munmap(addr: *mut c_void, len: usize) -> c_int;
        fn close(fd: c_int) -> c_int;
    }
    const PROT_READ: c_int = 1;
    const PROT_WRITE: c_int = 2;
    const MAP_SHARED: c_int = 1;
    const MFD_CLOEXEC: c_uint = 1;

    /// (read-write view, read-only view) of `len` fresh zeroed bytes, or None.
    pub fn twin_views(len: usize) -> Option<(*mut u8, *const u8)> {
        unsafe {
            let fd = memfd_create(b"pamm-quote\0".as_ptr() as *const c_char, MFD_CLOEXEC);
            if fd < 0 {
                return None;
            }
            let failed = !0usize as *mut c_void;
            let mut views = None;
            if ftruncate(fd, len as i64) == 0 {
                let w = mmap(std::ptr::null_mut(), len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                let r = mmap(std::ptr::null_mut(), len, PROT_READ, MAP_SHARED, fd, 0);
                if w != failed && r != failed {
                    views = Some((w as *mut u8, r as *const u8));
                } else {
                    if w != failed {
                        munmap(w, len);
                    }
                    if r != failed {
                        munmap(r, len);
                    }
                }
            }
            close(fd);
            views
        }
    }
}

impl PayloadPages {
    fn new(slots: usize) -> Self {
        let len = slots.max(1) * PAGE;
        #[cfg(target_os = "linux")]
        if let Some((write, read)) = pages::twin_views(len) {
            return PayloadPages { write, read, len, shared: true, _fallback: Vec::new() };
        }
        let mut fallback = vec![0u8; slots.max(1) * PAYLOAD];
        let write = fallback.as_mut_ptr();
        PayloadPages { write, read: write, len, shared: false, _fallback: fallback }
    }

    fn slot(&self, k: usize) -> QuotePayload {
        let at = if self.shared { k * PAGE } else { k * PAYLOAD };
        QuotePayload {
            write: unsafe { self.write.add(at) },
            read: unsafe { self.read.add(at) },
            shared: self.shared,
            storage_synced: Cell::new(false),
        }
    }
}

impl Drop for PayloadPages {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if self.shared {
            unsafe {
                pages::munmap(self.write as *mut _, self.len);
                pages::munmap(self.read as *mut _, self.len);
            }
        }
    }
}

enum Quoter {
    Native { compute: ComputeSwapFn, after: AfterSwapFn, payload: QuotePayload, meter: Meter },
    Cpamm { fee_buy: u32, fee_sell: u32 },
}

impl Quoter {
    #[inline(always)]
    fn quote(&self, is_buy: bool, input: u64, rx: u64, ry: u64, storage: &[u8; STORAGE]) -> u64 {
        match self {
            Quoter::Native { compute, payload, meter, .. } => {
                payload.fill(is_buy, input, rx, ry, storage);
                meter.run(|| unsafe { compute(payload.read, PAYLOAD) })
            }
            Quoter::Cpamm { fee_buy, fee_sell } => {
                if is_buy {
                    cpamm_quote(input, ry, rx, *fee_buy)
                } else {
                    cpamm_quote(input, rx, ry, *fee_sell)
                }
            }
        }
    }

    /// Calls the strategy's after_swap with a trade or epoch payload; its storage may change.
    fn hook(&self, payload: &[u8], storage: &mut [u8; STORAGE]) {
        if let Quoter::Native { after, payload: quote_payload, meter, .. } = self {
            meter.run(|| unsafe { after(payload.as_ptr(), payload.len(), storage.as_mut_ptr()) });
            quote_payload.storage_synced.set(false);
        }
    }
}

// ─── Solvers ────────────────────────────────────────────────────────────────────────────

/// Golden-section maximisation, 50 iterations at most. `Reference` keeps the published
/// point placement, which walks away from the maximum; `Corrected` uses the standard one.
fn golden_section_max<F: Fn(f64) -> f64>(f: F, lo: f64, hi: f64, profile: Profile) -> (f64, f64) {
    const PHI: f64 = 1.618033988749895;
    let r = 2.0 - PHI;
    let (mut a, mut b) = (lo, hi);
    let (mut c, mut d) = match profile {
        Profile::Reference => (b - r * (b - a), a + r * (b - a)),
        Profile::Corrected => (a + r * (b - a), b - r * (b - a)),
    };
    let mut fc = f(c);
    let mut fd = f(d);
    for _ in 0..50 {
        if fc < fd {
            a = c;
            c = d;
            fc = fd;
            d = match profile {
                Profile::Reference => a + r * (b - a),
                Profile::Corrected => b - r * (b - a),
            };
            fd = f(d);
        } else {
            b = d;
            d = c;
            fd = fc;
            c = match profile {
                Profile::Reference => b - r * (b - a),
                Profile::Corrected => a + r * (b - a),
            };
            fc = f(c);
        }
        if (b - a) / (b + a + 1e-14) < 1e-8 {
            break;
        }
    }
    let x = 0.5 * (a + b);
    (x, f(x))
}

/// Size of the arbitrage trade against one pool, or None when it is not worth the floor.
/// `bracket_scaled`: the reference's strategy arbitrage searches [0, 0.9 * raw reserve].
fn arbitrage<Q: Fn(bool, u64) -> u64>(
    rx: u64,
    ry: u64,
    fair: f64,
    floor: f64,
    profile: Profile,
    bracket_scaled: bool,
    quote: Q,
) -> Option<(bool, u64, u64)> {
    let spot = ry as f64 / rx as f64;
    let is_buy = match profile {
        Profile::Reference => spot > fair,
        Profile::Corrected => spot < fair,
    };
    let reserve_in = if is_buy { ry as f64 } else { rx as f64 };
    let max_in = if bracket_scaled { reserve_in * 0.9 } else { reserve_in * 0.9 / SCALE_F };
    // Every probe calls the strategy, exactly as the reference does: a strategy may keep
    // process-global state, so the number and order of calls is part of the result.
    let profit = |input: f64| -> f64 {
        let input_scaled = (input * SCALE_F) as u64;
        if input_scaled == 0 {
            return 0.0;
        }
        let out = quote(is_buy, input_scaled) as f64 / SCALE_F;
        if is_buy { out * fair - input } else { out - input * fair }
    };
    let (best_in, best_profit) = golden_section_max(profit, 0.0, max_in, profile);
    if best_profit < floor || best_in < 1.0 / SCALE_F {
        return None;
    }
    let input_scaled = (best_in * SCALE_F) as u64;
    Some((is_buy, input_scaled, quote(is_buy, input_scaled)))
}

/// N-way split of one retail order by bisection on a shadow price, then a pro-rata
/// normalisation to the order size. Returns (input, output) per pool.
fn route<Q: Fn(usize, bool, u64) -> u64>(
    reserves: &[(u64, u64)],
    is_buy: bool,
    total_input: f64,
    profile: Profile,
    pure: &[bool],
    quote: Q,
) -> Vec<(u64, u64)> {
    let n = reserves.len();
    let step_floor = match profile {
        Profile::Reference => 1.0 / SCALE_F,
        Profile::Corrected => 0.001,
    };
    let marginal = |i: usize, x: f64| -> f64 {
        let delta = x * 0.001 + step_floor;
        let o1 = quote(i, is_buy, (x * SCALE_F) as u64) as f64 / SCALE_F;
        let o2 = quote(i, is_buy, ((x + delta) * SCALE_F) as u64) as f64 / SCALE_F;
        (o2 - o1) / delta
    };
    let tiny = 1.0 / SCALE_F;
    let max_in: Vec<f64> = reserves
        .iter()
        .map(|&(rx, ry)| if is_buy { ry as f64 * 0.9 / SCALE_F } else { rx as f64 * 0.9 / SCALE_F })
        .collect();
    // The reference re-evaluates both end marginals on every call of `absorb`. A strategy's
    // quotes are calls into untrusted code that may keep process-global state, so they are
    // repeated in the same order; only pools whose quotes are pure (`pure[i]`: the
    // normalizer, built-in fixed-fee pools, and in training the strategies flagged
    // POOL_PURE) are evaluated once, and so are their bisection probes (`ProbeTree`).
    let ends = |i: usize| (marginal(i, tiny), marginal(i, max_in[i]));
    let cached: Vec<Option<(f64, f64)>> = (0..n).map(|i| if pure[i] { Some(ends(i)) } else { None }).collect();
    let m_tiny = |i: usize| match cached[i] {
        Some((t, _)) => t,
        None => marginal(i, tiny),
    };
    let m_cap = |i: usize| match cached[i] {
        Some((_, c)) => c,
        None => marginal(i, max_in[i]),
    };
    let trees: Vec<RefCell<ProbeTree>> = (0..n).map(|_| RefCell::new(ProbeTree::new())).collect();
    let absorb = |i: usize, lambda: f64| -> f64 {
        let max_in = max_in[i];
        if m_tiny(i) < lambda {
            return 0.0;
        }
        if m_cap(i) >= lambda {
            return max_in;
        }
        if pure[i] {
            return trees[i].borrow_mut().bisect(max_in, lambda, |x| marginal(i, x));
        }
        let (mut lo, mut hi) = (0.0f64, max_in);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if marginal(i, mid) >= lambda { lo = mid } else { hi = mid }
            if (hi - lo) / (hi + lo + 1e-12) < 1e-6 {
                break;
            }
        }
        0.5 * (lo + hi)
    };
    // The bisection needs only whether the pools absorb more than the order at `mid`. A pure
    // pool's absorb lies inside the interval its bisection has narrowed to so far, and f64
    // addition is monotone, so the sum of the pools' lower (upper) ends bounds the sum of
    // their values. Pure pools are walked down only until the bounds decide the comparison
    // (`Walk`); other pools are evaluated in full, in order, as before. Same decisions, same
    // lambda, bit for bit; far fewer probes of the pure pools in the early iterations.
    let exceeds = |mid: f64| -> bool {
        let mut walks: Vec<Walk> = (0..n)
            .map(|i| {
                if !pure[i] {
                    Walk::Exact(absorb(i, mid))
                } else if m_tiny(i) < mid {
                    Walk::Exact(0.0)
                } else if m_cap(i) >= mid {
                    Walk::Exact(max_in[i])
                } else {
                    Walk::start(max_in[i])
                }
            })
            .collect();
        loop {
            let (mut low, mut high) = (0.0f64, 0.0f64);
            let mut widest: Option<(usize, f64)> = None;
            for (i, w) in walks.iter().enumerate() {
                let (l, h) = w.bounds();
                low += l;
                high += h;
                if h - l > widest.map_or(0.0, |(_, width)| width) {
                    widest = Some((i, h - l));
                }
            }
            if low > total_input {
                return true;
            }
            match widest {
                Some((i, _)) if high > total_input => {
                    walks[i] = trees[i].borrow_mut().descend(walks[i], mid, |x| marginal(i, x));
                }
                _ => return high > total_input,
            }
        }
    };
    let lambda_max = (0..n).map(m_tiny).fold(0.0f64, f64::max);
    let (mut lo, mut hi) = (0.0f64, lambda_max * 1.5);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        let too_much = exceeds(mid);
        match (profile, too_much) {
            (Profile::Reference, true) | (Profile::Corrected, false) => hi = mid,
            _ => lo = mid,
        }
        if (hi - lo) / (hi + lo + 1e-12) < 1e-6 {
            break;
        }
    }
    let lambda_star = 0.5 * (lo + hi);
    let raw: Vec<f64> = (0..n).map(|i| absorb(i, lambda_star)).collect();
    let mut raw_sum = 0.0f64;
    for &r in &raw {
        raw_sum += r;
    }
    let scale = if raw_sum > 1e-12 { total_input / raw_sum } else { 0.0 };
    (0..n)
        .map(|i| {
            let input = ((raw[i] * scale) * SCALE_F) as u64;
            if input == 0 { (0, 0) } else { (input, quote(i, is_buy, input)) }
        })
        .collect()
}

/// The bisection of `absorb` for one pure pool within one order. It always starts from
/// [0, max_in] and halves, so the probe reached by a path of decisions is the same point
/// whatever lambda is tried, and so are its marginal (the pool is pure) and whether the
/// bisection stops after it. Each is computed once per order: a lambda that follows a known
/// path costs one comparison per level. The result is bit for bit the plain loop's.
struct ProbeTree {
    marginal: Vec<Option<f64>>,
    next: Vec<[Next; 2]>,
}

#[derive(Clone, Copy)]
enum Next {
    Open,
    Node(u32),
    Done(f64),
}

/// Where one bisection of a pure pool stands: at a node whose interval is [lo, hi] (the
/// result will lie in it), or finished.
#[derive(Clone, Copy)]
enum Walk {
    At { node: u32, depth: u32, lo: f64, hi: f64 },
    Exact(f64),
}

impl Walk {
    fn start(max_in: f64) -> Walk {
        Walk::At { node: 0, depth: 0, lo: 0.0, hi: max_in }
    }

    /// (lowest, highest) value the bisection can still return.
    #[inline]
    fn bounds(&self) -> (f64, f64) {
        match *self {
            Walk::At { lo, hi, .. } => (lo, hi),
            Walk::Exact(x) => (x, x),
        }
    }
}

impl ProbeTree {
    fn new() -> Self {
        ProbeTree { marginal: vec![None], next: vec![[Next::Open; 2]] }
    }

    /// The plain loop of `absorb`: at most 60 halvings, stopping at a relative width 1e-6.
    fn bisect<M: Fn(f64) -> f64>(&mut self, max_in: f64, lambda: f64, marginal: M) -> f64 {
        let mut walk = Walk::start(max_in);
        loop {
            match self.descend(walk, lambda, &marginal) {
                Walk::Exact(x) => return x,
                next => walk = next,
            }
        }
    }

    /// One halving of the plain loop, from `walk` (an `At`).
    #[inline]
    fn descend<M: Fn(f64) -> f64>(&mut self, walk: Walk, lambda: f64, marginal: M) -> Walk {
        let Walk::At { node, depth, mut lo, mut hi } = walk else { return walk };
        let node = node as usize;
        let mid = 0.5 * (lo + hi);
        let m = match self.marginal[node] {
            Some(m) => m,
            None => {
                let m = marginal(mid);
                self.marginal[node] = Some(m);
                m
            }
        };
        let up = m >= lambda;
        if up { lo = mid } else { hi = mid }
        let depth = depth + 1;
        match self.next[node][up as usize] {
            Next::Done(x) => Walk::Exact(x),
            Next::Node(k) => Walk::At { node: k, depth, lo, hi },
            Next::Open => {
                if (hi - lo) / (hi + lo + 1e-12) < 1e-6 || depth == 60 {
                    let x = 0.5 * (lo + hi);
                    self.next[node][up as usize] = Next::Done(x);
                    return Walk::Exact(x);
                }
                let k = self.marginal.len() as u32;
                self.marginal.push(None);
                self.next.push([Next::Open; 2]);
                self.next[node][up as usize] = Next::Node(k);
                Walk::At { node: k, depth, lo, hi }
            }
        }
    }
}

// ─── Capital rebalancing ────────────────────────────────────────────────────────────────

fn risk_adjusted_score(edge: f64, lambda: f64) -> f64 {
    edge - lambda * f64::max(0.0, -edge)
}

fn softmax_weights(scores: &[f64], temperature: f64, min_weight: f64) -> Vec<f64> {
    let n = scores.len();
    let max_s = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min_s = scores.iter().cloned().fold(f64::INFINITY, f64::min);
    let spread = ((max_s - min_s) / 40.0).max(1.0);
    let exps: Vec<f64> = scores.iter().map(|&s| ((s - max_s) / (temperature * spread)).exp()).collect();
    let mut sum_exp = 0.0f64;
    for &e in &exps {
        sum_exp += e;
    }
    let raw: Vec<f64> = exps.iter().map(|&e| e / sum_exp).collect();
    let floor_total = min_weight * n as f64;
    let mut w: Vec<f64> = if min_weight > 0.0 && floor_total < 1.0 {
        let remaining = 1.0 - floor_total;
        raw.iter().map(|&r| min_weight + remaining * r).collect()
    } else {
        raw
    };
    let mut total = 0.0f64;
    for &x in &w {
        total += x;
    }
    for x in w.iter_mut() {
        *x /= total;
    }
    w
}

/// Returns (edge, trade count, risk-adjusted score) per strategy and rescales reserves.
fn rebalance(amms: &mut [Amm], cfg: &PammConfig) -> Vec<(f64, u64, f64)> {
    let summaries: Vec<(f64, u64, f64)> = amms
        .iter()
        .map(|a| (a.epoch_edge, a.epoch_trades, risk_adjusted_score(a.epoch_edge, cfg.lambda)))
        .collect();
    let scores: Vec<f64> = summaries.iter().map(|s| s.2).collect();
    let weights = softmax_weights(&scores, cfg.softmax_temperature, cfg.min_capital_weight);
    let total_capital_y: u128 = amms.iter().map(|a| a.ry as u128 * 2).sum();
    for (a, &w) in amms.iter_mut().zip(weights.iter()) {
        let target = (total_capital_y as f64 * w) as u128;
        let new_ry = (target / 2).max(SCALE) as u64;
        let spot = a.ry as f64 / a.rx as f64;
        let new_rx = (new_ry as f64 / spot).max(1.0) as u64;
        a.rx = new_rx;
        a.ry = new_ry;
        a.capital_weight = w;
        a.epoch_edge = 0.0;
        a.epoch_trades = 0;
    }
    summaries
}

// ─── Payloads ───────────────────────────────────────────────────────────────────────────

#[allow(clippy::too_many_arguments)]
fn after_swap_payload(
    amm: &Amm,
    index: usize,
    is_buy: bool,
    input: u64,
    output: u64,
    step: u64,
    epoch_len: u64,
    flow: f32,
    n_field: usize,
    competitors: &[f32; COMPETITOR_SLOTS],
) -> [u8; 92 + STORAGE] {
    let mut b = [0u8; 92 + STORAGE];
    b[0] = 2;
    b[1] = if is_buy { 0 } else { 1 };
    b[2..10].copy_from_slice(&input.to_le_bytes());
    b[10..18].copy_from_slice(&output.to_le_bytes());
    b[18..26].copy_from_slice(&amm.rx.to_le_bytes());
    b[26..34].copy_from_slice(&amm.ry.to_le_bytes());
    b[34..42].copy_from_slice(&step.to_le_bytes());
    let epoch_step = (step as u32) % (epoch_len as u32);
    let epoch_number = (step / epoch_len) as u32;
    b[42..46].copy_from_slice(&epoch_step.to_le_bytes());
    b[46..50].copy_from_slice(&epoch_number.to_le_bytes());
    b[50] = n_field as u8;
    b[51] = index as u8;
    b[52..56].copy_from_slice(&flow.to_le_bytes());
    b[56..60].copy_from_slice(&(amm.capital_weight as f32).to_le_bytes());
    for (k, p) in competitors.iter().enumerate() {
        b[60 + 4 * k..64 + 4 * k].copy_from_slice(&p.to_le_bytes());
    }
    b[92..].copy_from_slice(&amm.storage);
    b
}

/// Spot prices of every other strategy (in index order, first 8), then the normalizer's if a
/// slot is left; unused slots are NaN.
fn competitor_prices(strats: &[Amm], me: usize, norm: &Amm) -> [f32; COMPETITOR_SLOTS] {
    let mut out = [f32::NAN; COMPETITOR_SLOTS];
    let mut slot = 0;
    for (j, s) in strats.iter().enumerate() {
        if j != me && slot < COMPETITOR_SLOTS {
            out[slot] = s.spot() as f32;
            slot += 1;
        }
    }
    if slot < COMPETITOR_SLOTS {
        out[slot] = norm.spot() as f32;
    }
    out
}

fn epoch_payload(amm: &Amm, epoch_number: u32, epoch_edge: f64) -> [u8; 41 + STORAGE] {
    let mut b = [0u8; 41 + STORAGE];
    b[0] = 5;
    b[1..5].copy_from_slice(&epoch_number.to_le_bytes());
    b[5..13].copy_from_slice(&amm.rx.to_le_bytes());
    b[13..21].copy_from_slice(&amm.ry.to_le_bytes());
    b[21..29].copy_from_slice(&epoch_edge.to_le_bytes());
    b[29..37].copy_from_slice(&amm.cumulative_edge.to_le_bytes());
    b[37..41].copy_from_slice(&(amm.capital_weight as f32).to_le_bytes());
    b[41..].copy_from_slice(&amm.storage);
    b
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

// ─── One simulation ─────────────────────────────────────────────────────────────────────

struct Sim<'a> {
    cfg: &'a PammConfig,
    profile: Profile,
    quoters: Vec<Quoter>,
    /// Per router slot (strategies, then the normalizer): quotes are pure (this core's own
    /// arithmetic, or a strategy flagged POOL_PURE in training), so the router may reuse them.
    pure: Vec<bool>,
    norm_fee: u32,
    strats: Vec<Amm>,
    norm: Amm,
}

impl<'a> Sim<'a> {
    fn arbitrage_strategy(&mut self, i: usize, step: u64, fair: f64) {
        let floor = self.cfg.arb_profit_floor;
        let (rx, ry) = (self.strats[i].rx, self.strats[i].ry);
        let trade = {
            let q = &self.quoters[i];
            let storage = &self.strats[i].storage;
            arbitrage(rx, ry, fair, floor, self.profile, self.profile == Profile::Reference, |b, x| {
                q.quote(b, x, rx, ry, storage)
            })
        };
        if let Some((is_buy, input, output)) = trade {
            self.strats[i].execute(is_buy, input, output, fair);
            let n_field = match self.profile {
                Profile::Reference => self.strats.len(),
                Profile::Corrected => self.strats.len() + 1,
            };
            self.notify_trade(i, is_buy, input, output, step, 0.0, n_field);
        }
    }

    fn notify_trade(&mut self, i: usize, is_buy: bool, input: u64, output: u64, step: u64, flow: f32, n_field: usize) {
        let competitors = competitor_prices(&self.strats, i, &self.norm);
        let payload = after_swap_payload(
            &self.strats[i], i, is_buy, input, output, step, self.cfg.epoch_len, flow, n_field, &competitors,
        );
        self.quoters[i].hook(&payload, &mut self.strats[i].storage);
    }

    fn arbitrage_normalizer(&mut self, fair: f64) {
        let (rx, ry, fee) = (self.norm.rx, self.norm.ry, self.norm_fee);
        let trade = arbitrage(rx, ry, fair, self.cfg.arb_profit_floor, self.profile, false, |b, x| {
            if b { normalizer_quote(x, ry, rx, fee) } else { normalizer_quote(x, rx, ry, fee) }
        });
        if let Some((is_buy, input, output)) = trade {
            self.norm.execute(is_buy, input, output, fair);
        }
    }

    fn retail(&mut self, is_buy: bool, size_y: f64, step: u64, fair: f64) {
        let n = self.strats.len();
        let total_input = if is_buy { size_y } else { size_y / fair };
        let reserves: Vec<(u64, u64)> =
            self.strats.iter().chain(std::iter::once(&self.norm)).map(|a| (a.rx, a.ry)).collect();
        let allocations = {
            let (quoters, strats, fee) = (&self.quoters, &self.strats, self.norm_fee);
            let res = &reserves;
            route(&reserves, is_buy, total_input, self.profile, &self.pure, |i, b, x| {
                let (rx, ry) = res[i];
                if i < n {
                    quoters[i].quote(b, x, rx, ry, &strats[i].storage)
                } else if b {
                    normalizer_quote(x, ry, rx, fee)
                } else {
                    normalizer_quote(x, rx, ry, fee)
                }
            })
        };
        let total_scaled = ((total_input * SCALE_F) as u64).max(1);
        for (i, &(input, output)) in allocations.iter().enumerate() {
            if input == 0 {
                continue;
            }
            if i < n {
                let flow = input as f32 / total_scaled as f32;
                self.strats[i].execute(is_buy, input, output, fair);
                self.notify_trade(i, is_buy, input, output, step, flow, n + 1);
            } else {
                self.norm.execute(is_buy, input, output, fair);
            }
        }
    }

    fn epoch_boundary(&mut self, epoch_number: u32) -> Vec<(f64, u64, f64)> {
        let summaries = rebalance(&mut self.strats, self.cfg);
        for i in 0..self.strats.len() {
            let payload = epoch_payload(&self.strats[i], epoch_number, summaries[i].0);
            self.quoters[i].hook(&payload, &mut self.strats[i].storage);
        }
        summaries
    }
}

/// Runs one simulation. Returns 0 on success, a negative code on bad arguments.
///
/// # Safety
/// All pointers must be valid for the sizes implied by `cfg` (see the Python bridge).
#[no_mangle]
pub unsafe extern "C" fn pamm_run(
    cfg: *const PammConfig,
    pools: *const PammPool,
    market: *const PammMarket,
    out: *const PammOut,
) -> i32 {
    let cfg = &*cfg;
    let market = &*market;
    let out = &*out;
    let n = cfg.n_strategies as usize;
    if n == 0 || n > 255 || cfg.steps == 0 || cfg.epoch_len == 0 || cfg.epoch_len > u32::MAX as u64 {
        return -1;
    }
    let profile = match cfg.profile {
        0 => Profile::Reference,
        1 => Profile::Corrected,
        _ => return -2,
    };
    let pools = slice::from_raw_parts(pools, n);
    let pages = PayloadPages::new(n);
    let mut quoters = Vec::with_capacity(n);
    for (k, p) in pools.iter().enumerate() {
        quoters.push(match p.kind {
            0 => Quoter::Native {
                compute: std::mem::transmute::<usize, ComputeSwapFn>(p.compute_swap),
                after: std::mem::transmute::<usize, AfterSwapFn>(p.after_swap),
                payload: pages.slot(k),
                meter: Meter { on: cfg.measure_calls != 0, calls: Cell::new(0), ns: Cell::new(0) },
            },
            1 => Quoter::Cpamm { fee_buy: p.fee_buy_bps, fee_sell: p.fee_sell_bps },
            _ => return -3,
        });
    }
    let steps = cfg.steps as usize;
    let fair_price = slice::from_raw_parts(market.fair_price, steps);
    let order_start = slice::from_raw_parts(market.order_start, steps + 1);
    let n_orders = order_start[steps] as usize;
    let order_is_buy = slice::from_raw_parts(market.order_is_buy, n_orders);
    let order_size = slice::from_raw_parts(market.order_size, n_orders);

    let norm_rx = (cfg.base_reserve_x as f64 * market.norm_liquidity_mult) as u64;
    let norm_ry = (cfg.base_reserve_y as f64 * market.norm_liquidity_mult) as u64;
    let pure = quoters
        .iter()
        .zip(pools.iter())
        .map(|(q, p)| matches!(q, Quoter::Cpamm { .. }) || p.flags & POOL_PURE != 0)
        .chain(std::iter::once(true))
        .collect();
    let mut sim = Sim {
        cfg,
        profile,
        quoters,
        pure,
        norm_fee: market.norm_fee_bps,
        strats: (0..n).map(|_| Amm::new(cfg.base_reserve_x, cfg.base_reserve_y, 1.0 / n as f64)).collect(),
        norm: Amm::new(norm_rx, norm_ry, 1.0),
    };
    for (amm, p) in sim.strats.iter_mut().zip(pools.iter()) {
        if !p.initial_storage.is_null() {
            amm.storage.copy_from_slice(slice::from_raw_parts(p.initial_storage, STORAGE));
        }
    }

    let n_epochs_max = ((cfg.steps - 1) / cfg.epoch_len) as usize;
    let mut epochs_written = 0usize;
    let trace_steps = cfg.trace_steps.min(cfg.steps) as usize;

    for step in 0..steps {
        let fair = fair_price[step];
        for i in 0..n {
            sim.arbitrage_strategy(i, step as u64, fair);
        }
        sim.arbitrage_normalizer(fair);
        for k in order_start[step] as usize..order_start[step + 1] as usize {
            sim.retail(order_is_buy[k] != 0, order_size[k], step as u64, fair);
        }
        let at_epoch_end = (step + 1) % cfg.epoch_len as usize == 0;
        if at_epoch_end && step != steps - 1 {
            let epoch_number = ((step + 1) / cfg.epoch_len as usize) as u32;
            let summaries = sim.epoch_boundary(epoch_number - 1);
            for (i, (edge, trades, score)) in summaries.into_iter().enumerate() {
                let at = i * n_epochs_max + epochs_written;
                *out.epoch_edge.add(at) = edge;
                *out.epoch_trade_count.add(at) = trades;
                *out.epoch_score.add(at) = score;
            }
            epochs_written += 1;
        }
        if step < trace_steps {
            for (j, a) in sim.strats.iter().chain(std::iter::once(&sim.norm)).enumerate() {
                let at = step * (n + 1) + j;
                *out.trace_u64.add(3 * at) = a.rx;
                *out.trace_u64.add(3 * at + 1) = a.ry;
                *out.trace_u64.add(3 * at + 2) = fnv1a64(&a.storage);
                *out.trace_f64.add(2 * at) = a.cumulative_edge;
                *out.trace_f64.add(2 * at + 1) = a.capital_weight;
            }
        }
    }

    for (i, a) in sim.strats.iter().enumerate() {
        *out.final_edge.add(i) = a.cumulative_edge;
        *out.final_capital_weight.add(i) = a.capital_weight;
    }
    *out.normalizer_edge = sim.norm.cumulative_edge;
    *out.epochs_written = epochs_written as u64;
    if !out.call_stats.is_null() {
        let (mut calls, mut ns) = (0u64, 0u64);
        for q in &sim.quoters {
            if let Quoter::Native { meter, .. } = q {
                calls += meter.calls.get();
                ns += meter.ns.get();
            }
        }
        *out.call_stats = calls;
        *out.call_stats.add(1) = ns;
    }
    0
}

/// ABI version of this core; the bridge refuses a cached build with another.
#[no_mangle]
pub extern "C" fn pamm_abi_version() -> u32 {
    3
}
