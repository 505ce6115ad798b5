//! Threshold expressions, read like k6's: `spawn-blocking.probe.loaded.p99 < 20ms`,
//! `rayon.heavy.efficiency > 0.8`, `*.probe.errors == 0`, and relative ones between
//! variants of the same run: `blocking-in-async.probe.loaded.p99 > 10 * rayon.probe.loaded.p99`.
//!
//! A selector is `VARIANT.STREAM[.PHASE].STATISTIC` (a step of the load sweep is
//! a phase: `rayon.probe.load-100.p99`), or `VARIANT.capacity`; VARIANT may be `*`
//! (every variant). Latencies compare in microseconds; a bare number next to a latency
//! means milliseconds (as in k6), `us`/`µs`/`ms`/`s` say so explicitly.

use std::fmt;

/// A latency percentile a selector can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Percentile {
    P50,
    P90,
    P99,
    P99_9,
    P99_99,
    Max,
}

impl Percentile {
    /// This percentile of `p`, in microseconds.
    pub fn of(self, p: &crate::stats::Percentiles) -> f64 {
        match self {
            Percentile::P50 => p.p50_us,
            Percentile::P90 => p.p90_us,
            Percentile::P99 => p.p99_us,
            Percentile::P99_9 => p.p99_9_us,
            Percentile::P99_99 => p.p99_99_us,
            Percentile::Max => p.max_us,
        }
    }
}

/// A statistic a selector can name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A latency percentile (corrected).
    Latency(Percentile),
    Mean,
    /// Requests sent.
    Count,
    /// Failed requests: no response, 4xx/5xx, or never sent.
    Errors,
    /// Responses per second in the measured window.
    Rate,
    /// Heavy 2xx completions per second over the ideal `cores / job cost`.
    Efficiency,
    /// Probe p99 under load over probe p99 idle.
    Inflation,
    /// The responsive capacity of a run's load sweep (`VARIANT.capacity`), as a
    /// multiple of what the cores can finish.
    Capacity,
    /// A percentile of the connect times of a stream that opens a connection per
    /// request (`fresh.connect.p99`).
    Connect(Percentile),
    /// A percentile of the times to first byte (`probe.ttfb.p99`).
    FirstByte(Percentile),
}

impl Stat {
    fn parse(name: &str) -> Option<Stat> {
        let percentile = |name: &str| match Stat::parse(name)? {
            Stat::Latency(p) => Some(p),
            _ => None,
        };
        if let Some(p) = name.strip_prefix("connect.") {
            return percentile(p).map(Stat::Connect);
        }
        if let Some(p) = name.strip_prefix("ttfb.") {
            return percentile(p).map(Stat::FirstByte);
        }
        Some(match name {
            "p50" => Stat::Latency(Percentile::P50),
            "p90" => Stat::Latency(Percentile::P90),
            "p99" => Stat::Latency(Percentile::P99),
            "p99.9" => Stat::Latency(Percentile::P99_9),
            "p99.99" => Stat::Latency(Percentile::P99_99),
            "max" => Stat::Latency(Percentile::Max),
            "mean" => Stat::Mean,
            "count" => Stat::Count,
            "errors" => Stat::Errors,
            "rate" => Stat::Rate,
            "efficiency" => Stat::Efficiency,
            "inflation" => Stat::Inflation,
            "capacity" => Stat::Capacity,
            _ => return None,
        })
    }

    /// Whether values of this statistic are durations.
    pub fn is_latency(self) -> bool {
        matches!(
            self,
            Stat::Latency(_) | Stat::Mean | Stat::Connect(_) | Stat::FirstByte(_)
        )
    }
}

/// `VARIANT.STREAM[.PHASE].STATISTIC` for a `run` report, `STREAM.STATISTIC` for
/// a `bench` report.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// `None` for `*`, and for the two-part form (which has no variant).
    pub variant: Option<String>,
    /// True for the two-part `STREAM.STATISTIC` form.
    pub bench: bool,
    pub stream: String,
    pub phase: Option<String>,
    pub stat: Stat,
    /// As written, for messages.
    pub text: String,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A number, already in the statistic's unit (µs for latencies).
    Value(f64),
    /// `factor * selector`.
    Scaled(f64, Selector),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        })
    }
}

/// A parsed threshold: `left OP right`, the left side always a selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub text: String,
    pub left: Selector,
    pub op: Op,
    pub right: Operand,
}

/// A malformed expression, with the column (from 1) of the mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub text: String,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at column {}\n  {}\n  {}^",
            self.message,
            self.column,
            self.text,
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            text: self.text.to_owned(),
            column: self.text[..at.min(self.text.len())].chars().count() + 1,
            message: message.into(),
        }
    }

    fn skip_space(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }

    /// A run of characters allowed in selectors and numbers.
    fn word(&mut self) -> (usize, &'a str) {
        self.skip_space();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | 'µ')))
            .unwrap_or(rest.len());
        self.pos += len;
        (start, &self.text[start..start + len])
    }

    fn op(&mut self) -> Result<Op, ParseError> {
        self.skip_space();
        let rest = &self.text[self.pos..];
        let (op, len) = if rest.starts_with("<=") {
            (Op::Le, 2)
        } else if rest.starts_with(">=") {
            (Op::Ge, 2)
        } else if rest.starts_with("==") {
            (Op::Eq, 2)
        } else if rest.starts_with("!=") {
            (Op::Ne, 2)
        } else if rest.starts_with('<') {
            (Op::Lt, 1)
        } else if rest.starts_with('>') {
            (Op::Gt, 1)
        } else {
            return Err(self.error(self.pos, "expected a comparison: <, <=, >, >=, == or !="));
        };
        self.pos += len;
        Ok(op)
    }

    fn selector(&mut self, start: usize, word: &str) -> Result<Selector, ParseError> {
        let parts: Vec<&str> = word.split('.').collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(self.error(
                start,
                format!("{word:?} is not VARIANT.STREAM[.PHASE].STATISTIC (or STREAM.STATISTIC for a bench report)"),
            ));
        }
        // VARIANT.capacity: a figure of the variant, not of a stream.
        if parts.len() == 2 && Stat::parse(parts[1]) == Some(Stat::Capacity) {
            return Ok(Selector {
                variant: (parts[0] != "*").then(|| parts[0].to_owned()),
                bench: false,
                stream: String::new(),
                phase: None,
                stat: Stat::Capacity,
                text: word.to_owned(),
            });
        }
        // STREAM.STATISTIC (a bench report), the statistic possibly dotted (p99.9).
        if let Some(stat) = Stat::parse(&parts[1..].join(".")) {
            return Ok(Selector {
                variant: None,
                bench: true,
                stream: parts[0].to_owned(),
                phase: None,
                stat,
                text: word.to_owned(),
            });
        }
        // The statistic may itself contain dots (p99.9, connect.p99.9): try the
        // longest tail first.
        for split in parts.len().saturating_sub(3)..parts.len() {
            if split < 2 {
                continue;
            }
            let stat_text = parts[split..].join(".");
            if let Some(stat) = Stat::parse(&stat_text) {
                let phase = match split {
                    2 => None,
                    3 => Some(parts[2].to_owned()),
                    _ => continue,
                };
                let variant = (parts[0] != "*").then(|| parts[0].to_owned());
                return Ok(Selector {
                    variant,
                    bench: false,
                    stream: parts[1].to_owned(),
                    phase,
                    stat,
                    text: word.to_owned(),
                });
            }
        }
        let last = parts[parts.len() - 1];
        let at = start + word.len() - last.len();
        Err(self.error(
            at,
            format!(
                "unknown statistic {last:?}; use p50, p90, p99, p99.9, p99.99, max, mean, count, errors, rate, efficiency, inflation or capacity (connect.P and ttfb.P for a percentile P of connect and first-byte times)"
            ),
        ))
    }

    /// A number with an optional unit, converted for `stat`.
    fn number(&self, start: usize, word: &str, stat: Stat) -> Result<f64, ParseError> {
        let digits = word
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(word.len());
        let (number, unit) = word.split_at(digits);
        let value: f64 = number
            .parse()
            .map_err(|_| self.error(start, format!("{word:?} is not a number")))?;
        let scale = match (unit, stat.is_latency()) {
            ("", true) | ("ms", true) => 1_000.0,
            ("us" | "µs", true) => 1.0,
            ("s", true) => 1_000_000.0,
            ("", false) => 1.0,
            (_, true) => {
                return Err(self.error(
                    start + digits,
                    format!("unknown unit {unit:?}; use us, ms or s"),
                ))
            }
            (_, false) => {
                return Err(self.error(
                    start + digits,
                    format!("{unit:?}: this statistic has no unit"),
                ))
            }
        };
        Ok(value * scale)
    }
}

/// Parses one threshold expression.
pub fn parse(text: &str) -> Result<Threshold, ParseError> {
    let mut p = Parser { text, pos: 0 };
    let (start, word) = p.word();
    if word.is_empty() {
        return Err(p.error(start, "expected a selector like rayon.probe.loaded.p99"));
    }
    let left = p.selector(start, word)?;
    let op = p.op()?;
    let (start, word) = p.word();
    if word.is_empty() {
        return Err(p.error(
            start,
            "expected a number or a selector after the comparison",
        ));
    }
    let starts_numeric = word.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.');
    let right = if starts_numeric {
        p.skip_space();
        if p.text[p.pos..].starts_with('*') {
            let factor: f64 = word
                .parse()
                .map_err(|_| p.error(start, format!("{word:?} is not a number")))?;
            p.pos += 1;
            let (s, w) = p.word();
            if w.is_empty() {
                return Err(p.error(s, "expected a selector after '*'"));
            }
            let other = p.selector(s, w)?;
            if other.stat.is_latency() != left.stat.is_latency() {
                return Err(p.error(s, "both sides must be latencies, or neither"));
            }
            Operand::Scaled(factor, other)
        } else {
            Operand::Value(p.number(start, word, left.stat)?)
        }
    } else {
        let other = p.selector(start, word)?;
        if other.stat.is_latency() != left.stat.is_latency() {
            return Err(p.error(start, "both sides must be latencies, or neither"));
        }
        Operand::Scaled(1.0, other)
    };
    p.skip_space();
    if p.pos < text.len() {
        return Err(p.error(p.pos, "unexpected text after the expression"));
    }
    Ok(Threshold {
        text: text.trim().to_owned(),
        left,
        op,
        right,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let t = parse("spawn-blocking.probe.loaded.p99 < 20ms").unwrap();
        assert_eq!(t.left.variant.as_deref(), Some("spawn-blocking"));
        assert_eq!(
            (t.left.stream.as_str(), t.left.phase.as_deref()),
            ("probe", Some("loaded"))
        );
        assert_eq!(t.left.stat, Stat::Latency(Percentile::P99));
        assert_eq!((t.op, t.right.clone()), (Op::Lt, Operand::Value(20_000.0)));

        let t = parse("rayon.heavy.efficiency > 0.8").unwrap();
        assert_eq!(
            (t.left.stat, t.left.phase.clone()),
            (Stat::Efficiency, None)
        );
        assert_eq!(parse("*.probe.errors == 0").unwrap().left.variant, None);
        assert_eq!(
            parse("a.probe.loaded.p99.9 <= 1s").unwrap().left.stat,
            Stat::Latency(Percentile::P99_9)
        );
        assert_eq!(
            parse("a.probe.loaded.max<500us").unwrap().right,
            Operand::Value(500.0)
        );
        assert_eq!(
            parse("a.probe.loaded.p50 < 2").unwrap().right,
            Operand::Value(2_000.0),
            "bare numbers are ms"
        );
        let bench = parse("api.p99.9 < 50ms").unwrap();
        assert!(bench.left.bench && bench.left.variant.is_none());
        assert_eq!(
            (bench.left.stream.as_str(), bench.left.stat),
            ("api", Stat::Latency(Percentile::P99_9))
        );
        assert!(parse("api.errors == 0").unwrap().left.bench);
        assert!(
            !parse("a.probe.p99.9 < 1s").unwrap().left.bench,
            "three parts ending in p99.9 name a variant"
        );

        let connect = parse("probe.connect.p99 < 5ms").unwrap().left;
        assert!(connect.bench);
        assert_eq!(
            (connect.stream.as_str(), connect.stat),
            ("probe", Stat::Connect(Percentile::P99))
        );
        let ttfb = parse("rayon.fresh.load-100.ttfb.p99.9 < 5ms").unwrap().left;
        assert_eq!(
            (ttfb.stream.as_str(), ttfb.phase.as_deref(), ttfb.stat),
            (
                "fresh",
                Some("load-100"),
                Stat::FirstByte(Percentile::P99_9)
            )
        );
        assert_eq!(
            parse("rayon.fresh.connect.max < 5ms").unwrap().left.stat,
            Stat::Connect(Percentile::Max)
        );

        let t = parse("blocking-in-async.probe.loaded.p99 > 10 * spawn-blocking.probe.loaded.p99")
            .unwrap();
        match t.right {
            Operand::Scaled(f, s) => {
                assert_eq!((f, s.variant.as_deref()), (10.0, Some("spawn-blocking")))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reports_the_column_of_the_mistake() {
        let cases = [
            ("rayon.heavy.efficency > 0.8", 13, "unknown statistic"),
            ("rayon.probe.loaded.p99 ~ 5ms", 24, "expected a comparison"),
            ("rayon.probe.loaded.p99 < 5parsecs", 27, "unknown unit"),
            ("rayon < 5ms", 1, "is not VARIANT"),
            ("rayon.probe.loaded.p99 < ", 26, "expected a number"),
            ("rayon.probe.loaded.p99 < 5ms extra", 30, "unexpected text"),
            (
                "rayon.heavy.efficiency > 2 * rayon.probe.loaded.p99",
                30,
                "both sides",
            ),
            ("rayon.heavy.rate > 5ms", 21, "no unit"),
        ];
        for (text, column, message) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.column, column, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
            assert!(e.to_string().contains('^'));
        }
    }
}
