//! Text from a peer (an ERR reply, an ERROR frame, another user's socket
//! name) is shown on a terminal only after its control characters are
//! escaped: a hostile peer must not move the cursor, retitle the window or
//! fake output lines with escape sequences.

use std::borrow::Cow;

/// Whether `c` may reach the terminal as it is.
fn harmless(c: char, keep_newlines: bool) -> bool {
    match c {
        '\n' => keep_newlines,
        '\t' => true,
        // C0 and C1 controls (ESC, CSI, BEL, ...) and DEL.
        c if c.is_control() => false,
        // Bidirectional overrides and isolates reorder what follows them.
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => false,
        _ => true,
    }
}

/// `text` with every control character (and bidi override) written as an
/// escape such as `\u{1b}`; line breaks are kept when `keep_newlines`.
pub fn for_terminal(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if text.chars().all(|c| harmless(c, keep_newlines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if harmless(c, keep_newlines) {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::for_terminal;

    #[test]
    fn escape_sequences_are_made_visible() {
        assert_eq!(for_terminal("OK 30", false), "OK 30");
        assert_eq!(
            for_terminal("bad\x1b[2J\x1b]0;owned\x07", false),
            "bad\\u{1b}[2J\\u{1b}]0;owned\\u{7}"
        );
        assert_eq!(for_terminal("a\nb", false), "a\\u{a}b");
        assert_eq!(for_terminal("a\nb", true), "a\nb");
        assert_eq!(for_terminal("x\u{202E}y\u{9b}", true), "x\\u{202e}y\\u{9b}");
    }
}
