//! Numbers written the way JavaScript's `JSON.stringify` writes them.
//!
//! Every JavaScript number is an IEEE double, and `JSON.stringify` writes it as
//! `Number.prototype.toString` does (ECMA-262, Number::toString): the shortest digits that
//! read back to the same double, in plain notation from 1e-6 up to (not including) 1e21
//! and with an `e+`/`e-` exponent outside it. serde_json writes the same doubles with
//! other text (`1e21` for `1e+21`, `1e-7` alike, but `1.5e300` for `1.5e+300` and
//! `1.2345678901234568e20` for `123456789012345680000`). Writing a record with this
//! formatter makes every number Node stored come back as the same bytes, and every number
//! a Rust handler stores read by Node and written again unchanged, without serde_json's
//! `arbitrary_precision` feature (which would switch number handling for the whole
//! application's build and break `#[serde(flatten)]` and untagged enums there).

use std::fmt::Write as _;
use std::io;

/// serde_json's compact output, with doubles in JavaScript's text.
pub(crate) struct JsFormatter;

impl serde_json::ser::Formatter for JsFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let mut text = Digits::new();
        write_js_number(&mut text, value);
        writer.write_all(text.as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        // JavaScript has no single precision: the value as a double, written as one
        // (what Node would write after reading it).
        self.write_f64(writer, f64::from(value))
    }
}

/// The longest text [`write_js_number`] produces: a sign, 17 significant digits, then
/// either the zeros of plain notation (up to 21 digits before the point), `0.` and five
/// zeros, or a point and a four-character exponent.
const MAX_LEN: usize = 32;

/// A stack buffer for one number's text (no allocation per number).
struct Digits {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl Digits {
    fn new() -> Self {
        Digits {
            bytes: [0; MAX_LEN],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn push(&mut self, byte: u8) {
        // The text of a double never exceeds MAX_LEN; if it ever did, the number would be
        // cut short rather than the process stopped.
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }
}

impl std::fmt::Write for Digits {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.extend(s.as_bytes());
        Ok(())
    }
}

/// Writes `value` as `JSON.stringify` would: `null` for NaN and the infinities, `0` for
/// both zeros, else Number::toString's text.
fn write_js_number(out: &mut Digits, value: f64) {
    if !value.is_finite() {
        out.extend(b"null");
        return;
    }
    if value == 0.0 {
        out.push(b'0');
        return;
    }
    // ryu gives the shortest digits that read back to the same double, the closest to the
    // exact value when several are as short and the even one on a tie: the digits ECMA-262
    // asks for (Rust's own `{:e}` breaks ties upwards, which V8 does not). ryu lays them out
    // as `123.0`, `0.001`, `1e21` or `1.5e-7`; collect the significant digits and where
    // the point falls, then lay them out by JavaScript's rules.
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value.abs()).as_bytes();
    let e_at = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let exponent = std::str::from_utf8(text.get(e_at + 1..).unwrap_or_default())
        .ok()
        .and_then(|e| e.parse::<i32>().ok())
        .unwrap_or(0);
    let mantissa = &text[..e_at];
    let point = mantissa
        .iter()
        .position(|&b| b == b'.')
        .unwrap_or(mantissa.len());
    let mut digits = [0u8; 24];
    let mut k = 0;
    // ECMA-262's n: the value is 0.d1d2…dk × 10^n.
    let mut n = point as i32 + exponent;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if k == 0 && b == b'0' {
            // A leading zero (`0.001`) moves the point, it is not a digit of the value.
            n -= 1;
        } else if k < digits.len() {
            digits[k] = b;
            k += 1;
        }
    }
    while k > 1 && digits[k - 1] == b'0' {
        k -= 1;
    }
    let digits = &digits[..k];
    let k = k as i32;

    if value < 0.0 {
        out.push(b'-');
    }
    if k <= n && n <= 21 {
        // Integer: the digits, then zeros.
        out.extend(digits);
        for _ in 0..n - k {
            out.push(b'0');
        }
    } else if 0 < n && n <= 21 {
        // A point inside the digits.
        let (int, frac) = digits.split_at(n as usize);
        out.extend(int);
        out.push(b'.');
        out.extend(frac);
    } else if -6 < n && n <= 0 {
        // Small: `0.`, zeros, the digits.
        out.extend(b"0.");
        for _ in 0..-n {
            out.push(b'0');
        }
        out.extend(digits);
    } else {
        // Exponent form, the sign always written.
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            out.extend(&digits[1..]);
        }
        out.push(b'e');
        out.push(if n - 1 < 0 { b'-' } else { b'+' });
        let mut e = Digits::new();
        let _ = write!(e, "{}", (n - 1).unsigned_abs());
        out.extend(e.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(value: f64) -> String {
        let mut out = Digits::new();
        write_js_number(&mut out, value);
        String::from_utf8(out.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn writes_what_javascript_writes() {
        // Each right-hand side is `JSON.stringify(x)` in Node 20.
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (-17.0, "-17"),
            (0.5, "0.5"),
            (-0.5, "-0.5"),
            (std::f64::consts::PI, "3.141592653589793"),
            (0.1 + 0.2, "0.30000000000000004"),
            (100.0, "100"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1.5e300, "1.5e+300"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740991.0, "9007199254740991"),
            (18446744073709552000.0, "18446744073709552000"),
            (0.000001, "0.000001"),
            (0.0000012345, "0.0000012345"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (-1.5e-7, "-1.5e-7"),
            (5e-324, "5e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (123.456, "123.456"),
            (0.001, "0.001"),
            // 1394865425023536.25 exactly: halfway between two shortest candidates, and
            // JavaScript takes the even one.
            (5579461700094145.0 / 4.0, "1394865425023536.2"),
        ];
        for &(value, text) in cases {
            assert_eq!(js(value), text, "{value:e}");
        }
    }

    #[test]
    fn zeros_and_non_finite_values_as_json_stringify() {
        assert_eq!(js(0.0), "0");
        assert_eq!(js(-0.0), "0");
        assert_eq!(js(f64::NAN), "null");
        assert_eq!(js(f64::INFINITY), "null");
        assert_eq!(js(f64::NEG_INFINITY), "null");
    }

    #[test]
    fn the_longest_texts_fit() {
        // 17 digits in exponent form with a three-digit negative exponent, 21 digits
        // of plain notation with a sign, and 17 digits after `-0.00000` (checked in Node 20).
        assert_eq!(js(-1.2345678901234567e-300), "-1.2345678901234568e-300");
        assert_eq!(js(-9.999999999999999e20), "-999999999999999900000");
        assert_eq!(js(-1.2345678901234567e-6), "-0.0000012345678901234567");
        assert!(js(-1.2345678901234567e-6).len() <= MAX_LEN);
    }
}
