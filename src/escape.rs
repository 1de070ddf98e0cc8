//! Text from the network made safe to print, with no I/O: invalid UTF-8 becomes U+FFFD, and
//! control and invisible characters become visible escapes, so a peer cannot clear the screen,
//! start a second line inside its message, reverse its text or hide part of it. Used for
//! everything shown that a peer chose: names and messages, in chat lines, logs and the input line.
//! And how many columns text takes on a terminal, for what is laid out in columns.

use std::io::Write;

/// Appends `bytes` to `out` as text that is safe to print: invalid UTF-8 becomes U+FFFD and
/// control characters (all but tab) become visible escapes.
pub fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    // The common case, plain printable ASCII, is copied as it is without decoding. `fold` rather
    // than `all`: with no early exit the compiler can check many bytes per instruction.
    if bytes.iter().fold(true, |plain, &b| plain & is_plain(b)) {
        out.extend_from_slice(bytes);
        return;
    }
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if valid.bytes().all(is_plain) {
            out.extend_from_slice(valid.as_bytes());
        } else {
            let mut prev = None;
            let mut chars = valid.chars().peekable();
            while let Some(c) = chars.next() {
                push_char(c, prev, chars.peek().copied(), out);
                prev = Some(c);
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(
                char::REPLACEMENT_CHARACTER
                    .encode_utf8(&mut [0; 4])
                    .as_bytes(),
            );
        }
    }
}

/// Escapes `bytes` into a new string; for log messages, which are not on the hot path.
pub fn escaped(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    escape_into(bytes, &mut out);
    String::from_utf8(out).expect("escape_into writes only valid UTF-8")
}

/// Printable ASCII or tab: safe to show as it is.
fn is_plain(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte) || byte == b'\t'
}

/// Writes one character, or its visible escape; `prev` and `next` are its neighbours in the text,
/// which decide whether a zero-width joiner or a tag character is part of an emoji.
fn push_char(c: char, prev: Option<char>, next: Option<char>, out: &mut Vec<u8>) {
    match c {
        '\t' => out.push(b'\t'),
        '\0'..='\x1f' | '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        _ if is_c1_control(c) || (is_invisible(c) && !joins_emoji(c, prev, next)) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        _ => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
    }
}

fn is_c1_control(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

/// The characters that change how text is shown without showing anything themselves: Unicode's
/// general category Cf ("format"), as listed in DerivedGeneralCategory.txt of Unicode 16.0, plus
/// the line separator (Zl, U+2028) and the paragraph separator (Zp, U+2029).
pub(crate) const INVISIBLE: [(u32, u32); 22] = [
    (0x00AD, 0x00AD),   // soft hyphen
    (0x0600, 0x0605),   // Arabic number signs
    (0x061C, 0x061C),   // Arabic letter mark (a bidi mark)
    (0x06DD, 0x06DD),   // Arabic end of ayah
    (0x070F, 0x070F),   // Syriac abbreviation mark
    (0x0890, 0x0891),   // Arabic pound and piastre marks above
    (0x08E2, 0x08E2),   // Arabic disputed end of ayah
    (0x180E, 0x180E),   // Mongolian vowel separator
    (0x200B, 0x200F), // zero-width space, non-joiner, joiner; left-to-right and right-to-left marks
    (0x2028, 0x2029), // line and paragraph separators (Zl, Zp)
    (0x202A, 0x202E), // bidi embeddings and overrides, and their end
    (0x2060, 0x2064), // word joiner, invisible operators
    (0x2066, 0x206F), // bidi isolates and their end; deprecated format characters
    (0xFEFF, 0xFEFF), // zero-width no-break space, the byte order mark
    (0xFFF9, 0xFFFB), // interlinear annotation
    (0x110BD, 0x110BD), // Kaithi number sign
    (0x110CD, 0x110CD), // Kaithi number sign above
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol beam and tie controls
    (0xE0001, 0xE0001), // language tag
    (0xE0020, 0xE007F), // tag characters: they can spell hidden ASCII, so even a flag's are shown
];

pub fn is_invisible(c: char) -> bool {
    let c = c as u32;
    INVISIBLE
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// Whether an invisible character is part of an emoji and shown as one: a zero-width joiner
/// between two pictographs, as in a family or a profession (👩‍💻). Everywhere else it is escaped.
fn joins_emoji(c: char, prev: Option<char>, next: Option<char>) -> bool {
    c == '\u{200D}'
        && prev.is_some_and(|p| is_pictograph(p) || p == '\u{FE0F}')
        && next.is_some_and(is_pictograph)
}

/// Roughly Unicode's Extended_Pictographic: the blocks emoji are drawn from, including the
/// skin-tone modifiers.
fn is_pictograph(c: char) -> bool {
    matches!(c, '\u{2190}'..='\u{21FF}' | '\u{2300}'..='\u{23FF}' | '\u{2460}'..='\u{27BF}'
        | '\u{2900}'..='\u{297F}' | '\u{2B00}'..='\u{2BFF}' | '\u{1F000}'..='\u{1FAFF}')
}

/// A name a peer claimed, for a warning: made safe, and when it is not plain ASCII followed by
/// its code points, so that a look-alike (a Cyrillic `а` in `аlice`) cannot pass for the name
/// it imitates: `"аlice" (\u{430}lice)`.
pub fn claimed_name(bytes: &[u8]) -> String {
    let shown = escaped(bytes);
    if shown.is_ascii() {
        return format!("\"{shown}\"");
    }
    let spelled: String = shown
        .chars()
        .map(|c| match c.is_ascii() {
            true => c.to_string(),
            false => format!("\\u{{{:x}}}", c as u32),
        })
        .collect();
    format!("\"{shown}\" ({spelled})")
}

/// How many columns a character takes on a terminal: two for wide ones (CJK, most emoji), none
/// for combining marks and the emoji joiner and variation selectors, one for the rest.
pub fn columns(c: char) -> usize {
    match c {
        '\u{0300}'..='\u{036F}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}' => 0,
        '\u{1100}'..='\u{115F}'
        | '\u{2E80}'..='\u{303E}'
        | '\u{3041}'..='\u{33FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{A000}'..='\u{A4CF}'
        | '\u{AC00}'..='\u{D7A3}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FE30}'..='\u{FE4F}'
        | '\u{FF00}'..='\u{FF60}'
        | '\u{FFE0}'..='\u{FFE6}'
        | '\u{1F300}'..='\u{1F64F}'
        | '\u{1F900}'..='\u{1F9FF}'
        | '\u{1FA70}'..='\u{1FAFF}'
        | '\u{20000}'..='\u{3FFFD}' => 2,
        _ => 1,
    }
}

/// How many columns `text` takes on a terminal (wide characters take two).
pub fn columns_of(text: &str) -> usize {
    text.chars().map(columns).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_name_that_is_not_ascii_is_spelled_out_so_a_look_alike_shows() {
        assert_eq!(claimed_name(b"alice"), "\"alice\"");
        // A Cyrillic a, then Latin.
        assert_eq!(
            claimed_name("\u{430}lice".as_bytes()),
            "\"\u{430}lice\" (\\u{430}lice)"
        );
        assert_eq!(claimed_name("zoë".as_bytes()), "\"zoë\" (zo\\u{eb})");
        // Made safe first: a control character is already an escape.
        assert_eq!(claimed_name(b"a\x1bb"), "\"a\\x1bb\"");
    }
}
