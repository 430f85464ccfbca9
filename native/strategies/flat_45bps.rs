// Starter strategy: a constant-product pool with a fixed 45 bps fee on the input.
const NAME: &str = "flat_45bps";
const FEE_BPS: u128 = 45;

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn quote(input: u64, r_in: u64, r_out: u64) -> u64 {
    if input == 0 || r_in == 0 || r_out == 0 {
        return 0;
    }
    let eff = input as u128 * (10_000 - FEE_BPS) / 10_000;
    (r_out as u128 * eff / (r_in as u128 + eff)) as u64
}

#[no_mangle]
pub extern "C" fn __prop_amm_compute_swap(data: *const u8, len: usize) -> u64 {
    if data.is_null() || len < 25 {
        return 0;
    }
    let b = unsafe { std::slice::from_raw_parts(data, len) };
    let (input, rx, ry) = (u64_at(b, 1), u64_at(b, 9), u64_at(b, 17));
    if b[0] == 0 { quote(input, ry, rx) } else { quote(input, rx, ry) }
}

#[no_mangle]
pub extern "C" fn __prop_amm_after_swap(_data: *const u8, _len: usize, _storage: *mut u8) {}

#[no_mangle]
pub extern "C" fn __prop_amm_get_name(buf: *mut u8, max_len: usize) -> usize {
    let n = NAME.len().min(max_len);
    unsafe { std::ptr::copy_nonoverlapping(NAME.as_ptr(), buf, n) };
    n
}
