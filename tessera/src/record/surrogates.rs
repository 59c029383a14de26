//! Lone UTF-16 surrogates in stored JSON. JavaScript strings may hold half a surrogate
//! pair (an emoji cut by `slice`), which `JSON.stringify` writes as a `\udXXX` escape
//! and Rust strings cannot hold. They are sheltered in private-use code points while a
//! record is read, and written back as the escapes they came from, so a Node app's record
//! round-trips byte for byte.

use super::DecodeError;

/// Where lone surrogates are sheltered: the last 2,048 code points of Unicode (the end of
/// Supplementary Private Use Area-B), one for each surrogate U+D800..U+DFFF.
pub(super) const SHELTER_BASE: u32 = 0x10_F800;

/// JavaScript strings may hold half a surrogate pair (an emoji cut by `slice`), and
/// `JSON.stringify` writes it as an escape such as `\ud83d`. Rust strings cannot hold it,
/// so serde_json refuses the whole document, and the user would lose a session Node reads
/// fine. Such escapes are replaced, before parsing, by private-use characters that stand
/// for them, and [`unshelter_lone_surrogates`] writes them back on output, so the record
/// round-trips byte for byte. `None` (no copy) when there is no lone surrogate.
///
/// A handler reading such a string sees the private-use character in place of the half
/// emoji. The stand-ins must stand for nothing else: a document that holds lone
/// surrogates *and* genuine characters of that block (raw, or escaped as a pair) is
/// refused as not JSON, as it was before sheltering, since they could not be told apart
/// when written (a genuine U+10F800 would go back as a lone `\ud800`, or merge with a
/// following lone low surrogate into another character). A handler that stores such a
/// character in a record that holds sheltered surrogates still has it written back as a
/// surrogate.
pub(super) fn shelter_lone_surrogates(json: &[u8]) -> Result<Option<Vec<u8>>, DecodeError> {
    let has_surrogate_escape = json
        .windows(3)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && (w[2] == b'd' || w[2] == b'D'));
    if !has_surrogate_escape {
        return Ok(None);
    }
    let hex4 = |at: usize| -> Option<u32> {
        let digits = json.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let mut out = Vec::with_capacity(json.len());
    let (mut i, mut in_string, mut changed, mut genuine) = (0, false, false, false);
    while i < json.len() {
        let b = json[i];
        if !in_string || b != b'\\' {
            if b == b'"' {
                in_string = !in_string;
            }
            out.push(b);
            i += 1;
            continue;
        }
        if json.get(i + 1) == Some(&b'u') {
            if let Some(unit) = hex4(i + 2).filter(|u| (0xD800..0xE000).contains(u)) {
                let paired = (0xD800..0xDC00).contains(&unit)
                    && json.get(i + 6..i + 8) == Some(b"\\u".as_slice())
                    && hex4(i + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
                if paired {
                    // U+10F800..U+10FFFF, escaped: \udbfe or \udbff and any low half.
                    genuine |= unit >= 0xDBFE;
                    out.extend_from_slice(&json[i..i + 12]);
                    i += 12;
                    continue;
                }
                if let Some(c) = char::from_u32(SHELTER_BASE + (unit - 0xD800)) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    changed = true;
                    i += 6;
                    continue;
                }
            }
        }
        // Any other escape: the backslash and the byte it escapes, untouched.
        out.extend_from_slice(&json[i..(i + 2).min(json.len())]);
        i += 2;
    }
    // U+10F800..U+10FFFF, raw: F4 8F A0..BF and a continuation byte.
    genuine |= json
        .windows(3)
        .any(|w| w[0] == 0xF4 && w[1] == 0x8F && (0xA0..=0xBF).contains(&w[2]));
    if changed && genuine {
        return Err(DecodeError::Json(serde::de::Error::custom(
            "lone surrogates in a document that also holds characters U+10F800..U+10FFFF, which stand for them while it is read",
        )));
    }
    Ok(changed.then_some(out))
}

/// Writes sheltered surrogates back as the `\uXXXX` escapes JavaScript wrote.
pub(super) fn unshelter_lone_surrogates(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 8);
    let mut i = 0;
    while i < json.len() {
        // U+10F800..U+10FFFF is F4 8F A0..BF 80..BF in UTF-8.
        if json[i] == 0xF4
            && json.get(i + 1) == Some(&0x8F)
            && json.get(i + 2).is_some_and(|b| (0xA0..=0xBF).contains(b))
        {
            if let Some(&b3) = json.get(i + 3) {
                let cp =
                    (0x0F << 12) | ((u32::from(json[i + 2]) & 0x3F) << 6) | (u32::from(b3) & 0x3F);
                let unit = 0xD800 + (0x10_0000 + cp - SHELTER_BASE);
                out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                i += 4;
                continue;
            }
        }
        out.push(json[i]);
        i += 1;
    }
    out
}
