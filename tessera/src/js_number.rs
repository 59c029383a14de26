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

use std::io;

/// serde_json's compact output, with doubles in JavaScript's text.
pub(crate) struct JsFormatter;

impl serde_json::ser::Formatter for JsFormatter {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        let mut buffer = ryu_js::Buffer::new();
        writer.write_all(js_number(&mut buffer, value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        // JavaScript has no single precision: the value as a double, written as one
        // (what Node would write after reading it).
        self.write_f64(writer, f64::from(value))
    }
}

/// `value` as `JSON.stringify` writes it: `null` for NaN and the infinities, else
/// Number::toString's text, `0` for both zeros included.
///
/// ryu-js is ryu (the shortest digits that read back to the same double, the even one on a
/// tie, as ECMA-262 asks; Rust's own `{:e}` breaks ties upwards, which V8 does not) laid
/// out by Number::toString's rules; the tests below hold it to Node's output.
fn js_number(buffer: &mut ryu_js::Buffer, value: f64) -> &str {
    if value.is_finite() {
        buffer.format_finite(value)
    } else {
        "null"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(value: f64) -> String {
        js_number(&mut ryu_js::Buffer::new(), value).to_owned()
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
    fn the_longest_texts() {
        // 17 digits in exponent form with a three-digit negative exponent, 21 digits
        // of plain notation with a sign, and 17 digits after `-0.00000` (checked in Node 20).
        assert_eq!(js(-1.2345678901234567e-300), "-1.2345678901234568e-300");
        assert_eq!(js(-9.999999999999999e20), "-999999999999999900000");
        assert_eq!(js(-1.2345678901234567e-6), "-0.0000012345678901234567");
    }

    #[test]
    fn through_serde_json() {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, JsFormatter);
        serde::Serialize::serialize(&serde_json::json!([1.5e300, 1e21, -0.0, 0.5]), &mut ser)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[1.5e+300,1e+21,0,0.5]");
    }
}
