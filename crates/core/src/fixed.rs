//! Fixed-point arithmetic for everything that feeds a state root: no floating point and no
//! platform `ln`, so an x86 workstation and an ARM board compute the same root.
//!
//! Trust and coherence are in millionths (`MICRO`), ATP in thousandths (`MILLI`), time in
//! milliseconds. No `f64` and no platform `ln`: an x86-64 workstation and an ARM board compute
//! the same bits.

/// One whole unit of a quantity kept in millionths (trust, coherence, ratios).
pub const MICRO: u64 = 1_000_000;
/// One whole ATP, kept in thousandths.
pub const MILLI: u64 = 1_000;
/// Milliseconds in a second.
pub const SECOND_MS: u64 = 1_000;
/// Milliseconds in an hour.
pub const HOUR_MS: u64 = 3_600 * SECOND_MS;
/// Milliseconds in a day: the unit of trust decay and ATP recharge.
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// `a * b / d` without intermediate overflow, rounding down. `d == 0` gives 0 (never a panic);
/// callers only divide by named non-zero constants or genesis values checked at load.
pub fn mul_div(a: u64, b: u64, d: u64) -> u64 {
    if d == 0 {
        return 0;
    }
    let v = u128::from(a) * u128::from(b) / u128::from(d);
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// ln(2) in Q0.64 fixed point (floor(ln 2 * 2^64)).
const LN2_Q64: u128 = 12_786_308_645_202_655_659;

/// Natural logarithm of `x_micro / 10^6`, in millionths, for `x_micro >= 10^6` (values below
/// one give 0: the only caller, trust decay, never needs a negative logarithm).
///
/// Computes log2 by the bit-by-bit squaring method in Q32.32 integers, then multiplies by
/// ln 2. Exact integer operations only, so the result is the same on every platform; it is
/// within 2 millionths of the true value over the range the protocol uses.
pub fn ln_micro(x_micro: u64) -> u64 {
    if x_micro <= MICRO {
        return 0;
    }
    // y = x in Q32.32; x_micro < 2^64 / 10^6 * 2^32 is not guaranteed, so work in u128.
    let y: u128 = (u128::from(x_micro) << 32) / u128::from(MICRO);
    // Integer part of log2(y / 2^32).
    let msb = 127 - y.leading_zeros(); // position of the top bit; y >= 2^32 so msb >= 32
    let int_part = u128::from(msb - 32);
    // Normalise to m in [1, 2) as Q32.32.
    let mut m: u128 = if msb >= 32 {
        y >> (msb - 32)
    } else {
        y << (32 - msb)
    };
    let one: u128 = 1 << 32;
    let mut frac: u128 = 0;
    for bit in (0..32).rev() {
        m = (m * m) >> 32;
        if m >= 2 * one {
            m >>= 1;
            frac |= 1 << bit;
        }
    }
    let log2_q32 = (int_part << 32) | frac;
    // ln = log2 * ln2; LN2 is Q0.64, so the product is Q32.96.
    let ln_q32 = (log2_q32 * (LN2_Q64 >> 32)) >> 32; // Q32.32
    let micro = (ln_q32 * u128::from(MICRO)) >> 32;
    u64::try_from(micro).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_matches_float_reference_within_two_millionths() {
        for x in [
            1_000_001u64,
            1_500_000,
            2_000_000,
            2_718_282,
            10_000_000,
            365_000_000,
            100_000_000_000,
        ] {
            let expected = ((x as f64) / 1e6).ln() * 1e6;
            let got = ln_micro(x) as f64;
            assert!(
                (got - expected).abs() <= 2.0,
                "ln({x}) = {got}, expected {expected}"
            );
        }
        assert_eq!(ln_micro(MICRO), 0);
        assert_eq!(ln_micro(0), 0);
    }

    #[test]
    fn mul_div_is_safe() {
        assert_eq!(mul_div(u64::MAX, u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(mul_div(5, 3, 0), 0);
        assert_eq!(mul_div(10, 21, 10), 21);
    }
}
