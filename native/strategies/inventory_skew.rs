// Starter strategy: 40 bps, skewed by inventory. When the pool holds more X than its value
// share (by the spot at its first trade), trades that add X pay more and trades that take X
// out pay less (15..120 bps). Storage: f64 slot 0 = reference spot.
const NAME: &str = "inventory_skew";

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}
fn slot(s: &[u8], i: usize) -> f64 {
    f64::from_bits(u64_at(s, 8 * i))
}

fn quote(input: u64, r_in: u64, r_out: u64, fee_bps: f64) -> u64 {
    if input == 0 || r_in == 0 || r_out == 0 {
        return 0;
    }
    let gamma = (10_000.0 - fee_bps.clamp(15.0, 120.0)) as u128;
    let eff = input as u128 * gamma / 10_000;
    (r_out as u128 * eff / (r_in as u128 + eff)) as u64
}

#[no_mangle]
pub extern "C" fn __prop_amm_compute_swap(data: *const u8, len: usize) -> u64 {
    if data.is_null() || len < 25 + 1024 {
        return 0;
    }
    let b = unsafe { std::slice::from_raw_parts(data, len) };
    let (input, rx, ry) = (u64_at(b, 1), u64_at(b, 9), u64_at(b, 17));
    let reference = slot(&b[25..], 0);
    // skew > 0: too much X relative to the reference value split
    let skew = if reference > 0.0 && ry > 0 {
        ((rx as f64 * reference) / ry as f64).ln().clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let shift = 80.0 * skew;
    if b[0] == 0 {
        quote(input, ry, rx, 40.0 - shift) // trader takes X out: cheaper when X-heavy
    } else {
        quote(input, rx, ry, 40.0 + shift) // trader adds X: dearer when X-heavy
    }
}

#[no_mangle]
pub extern "C" fn __prop_amm_after_swap(data: *const u8, len: usize, storage: *mut u8) {
    if data.is_null() || storage.is_null() || len < 34 {
        return;
    }
    let b = unsafe { std::slice::from_raw_parts(data, len) };
    let s = unsafe { std::slice::from_raw_parts_mut(storage, 1024) };
    if b[0] == 2 && slot(s, 0) <= 0.0 {
        let (rx, ry) = (u64_at(b, 18) as f64, u64_at(b, 26) as f64);
        if rx > 0.0 && ry > 0.0 {
            s[0..8].copy_from_slice(&(ry / rx).to_bits().to_le_bytes());
        }
    }
}

#[no_mangle]
pub extern "C" fn __prop_amm_get_name(buf: *mut u8, max_len: usize) -> usize {
    let n = NAME.len().min(max_len);
    unsafe { std::ptr::copy_nonoverlapping(NAME.as_ptr(), buf, n) };
    n
}
