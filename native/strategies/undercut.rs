// Starter strategy: competes on price. Starts at 50 bps; after each epoch it cuts the fee by
// 10% when its share of retail flow was low and raises it by 25% after a losing epoch
// (10..150 bps). Storage: f64 slot 0 = fee, slot 1 = flow-share EMA.
const NAME: &str = "undercut";

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}
fn slot(s: &[u8], i: usize) -> f64 {
    f64::from_bits(u64_at(s, 8 * i))
}
fn set_slot(s: &mut [u8], i: usize, v: f64) {
    s[8 * i..8 * i + 8].copy_from_slice(&v.to_bits().to_le_bytes());
}
fn fee(s: &[u8]) -> f64 {
    let f = slot(s, 0);
    if f.is_finite() && f > 0.0 { f } else { 0.0050 }
}

fn quote(input: u64, r_in: u64, r_out: u64, fee: f64) -> u64 {
    if input == 0 || r_in == 0 || r_out == 0 {
        return 0;
    }
    let gamma = ((1.0 - fee) * 1e6) as u128;
    let eff = input as u128 * gamma / 1_000_000;
    (r_out as u128 * eff / (r_in as u128 + eff)) as u64
}

#[no_mangle]
pub extern "C" fn __prop_amm_compute_swap(data: *const u8, len: usize) -> u64 {
    if data.is_null() || len < 25 + 1024 {
        return 0;
    }
    let b = unsafe { std::slice::from_raw_parts(data, len) };
    let f = fee(&b[25..]);
    let (input, rx, ry) = (u64_at(b, 1), u64_at(b, 9), u64_at(b, 17));
    if b[0] == 0 { quote(input, ry, rx, f) } else { quote(input, rx, ry, f) }
}

#[no_mangle]
pub extern "C" fn __prop_amm_after_swap(data: *const u8, len: usize, storage: *mut u8) {
    if data.is_null() || storage.is_null() || len < 41 {
        return;
    }
    let b = unsafe { std::slice::from_raw_parts(data, len) };
    let s = unsafe { std::slice::from_raw_parts_mut(storage, 1024) };
    match b[0] {
        2 if len >= 56 => {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[52..56]);
            let flow = f32::from_le_bytes(w) as f64;
            if flow > 0.0 {
                set_slot(s, 1, 0.95 * slot(s, 1) + 0.05 * flow);
            }
        }
        5 => {
            let edge = f64::from_bits(u64_at(b, 21));
            let mut f = fee(s);
            if edge < 0.0 {
                f *= 1.25;
            } else if slot(s, 1) < 0.3 {
                f *= 0.9;
            }
            set_slot(s, 0, f.clamp(0.0010, 0.0150));
        }
        _ => {}
    }
}

#[no_mangle]
pub extern "C" fn __prop_amm_get_name(buf: *mut u8, max_len: usize) -> usize {
    let n = NAME.len().min(max_len);
    unsafe { std::ptr::copy_nonoverlapping(NAME.as_ptr(), buf, n) };
    n
}
