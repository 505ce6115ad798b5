//! How figures and text are written out, the same way in every rendering: latencies
//! with a unit that keeps three or four significant digits, and text escaped for
//! HTML and XML pages.

/// Formats microseconds with a unit that keeps three or four significant digits.
pub fn format_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1_000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// Escapes text for HTML and XML, in element content and in quoted attributes.
pub fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_sensible_units() {
        assert_eq!(format_us(12.4), "12µs");
        assert_eq!(format_us(1_234.0), "1.23ms");
        assert_eq!(format_us(2_500_000.0), "2.50s");
    }

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            escape_markup(r#"<a href="x">Tom & Jerry's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
    }
}
