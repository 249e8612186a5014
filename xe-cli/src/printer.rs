//! Output in upstream xe's layout: records as aligned `name ( RW): value` lines with blank lines
//! between them, plain lines, and `--minimal` comma lists. Never performs API calls.

/// One printed record: `(label, value)` pairs in order.
pub type Record = Vec<(String, String)>;

/// Collects what a command prints.
#[derive(Debug, Default)]
pub struct Printer {
    minimal: bool,
    out: String,
    err: String,
    /// `--minimal` pieces, printed comma-joined at the end.
    buffer: Vec<String>,
}

/// Escapes `,` and `\` in a `--minimal` item.
pub fn escape_commas(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ',' => out.push_str("\\,"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out
}

/// Lays out one record: the first label padded on the right, the others on the left, all to
/// four more than the longest label.
pub fn layout_record(r: &Record) -> String {
    let width = 4 + r.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut lines = Vec::with_capacity(r.len());
    for (i, (k, v)) in r.iter().enumerate() {
        if i == 0 {
            lines.push(format!("{k:<width$}: {v}"));
        } else {
            lines.push(format!("{k:>width$}: {v}"));
        }
    }
    lines.join("\n") + "\n"
}

impl Printer {
    /// A printer in normal or `--minimal` mode.
    pub fn new(minimal: bool) -> Printer {
        Printer {
            minimal,
            ..Printer::default()
        }
    }

    /// Whether `--minimal` is on.
    pub fn minimal(&self) -> bool {
        self.minimal
    }

    /// Records (`PTable`): in minimal mode only the first value of each.
    pub fn table(&mut self, records: &[Record]) {
        if self.minimal {
            if !records.is_empty() && records.iter().all(|r| !r.is_empty()) {
                let names: Vec<String> = records.iter().map(|r| escape_commas(&r[0].1)).collect();
                self.buffer.push(names.join(","));
            }
            return;
        }
        for r in records {
            self.out.push_str(&layout_record(r));
            self.out.push_str("\n\n");
        }
    }

    /// Lines (`PList`): each on its own line, or comma-joined in minimal mode.
    pub fn list(&mut self, items: &[String]) {
        if self.minimal {
            let escaped: Vec<String> = items.iter().map(|s| escape_commas(s)).collect();
            self.buffer.push(escaped.join(","));
            return;
        }
        for i in items {
            self.out.push_str(i);
            self.out.push('\n');
        }
    }

    /// Everything printed so far: `(stdout, stderr)`; minimal output is flushed as one line.
    pub fn finish(mut self, ok: bool) -> (String, String) {
        if self.minimal && ok {
            // Compatibility: upstream prepends each piece, so pieces come out in reverse.
            self.buffer.reverse();
            self.out.push_str(&self.buffer.join(","));
            self.out.push('\n');
        }
        (self.out, self.err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn record_aligns_colons_four_past_the_longest_label() {
        let r = rec(&[("uuid ( RO)", "u1"), ("name-label ( RW)", "n")]);
        assert_eq!(
            layout_record(&r),
            "uuid ( RO)          : u1\n    name-label ( RW): n\n"
        );
    }

    #[test]
    fn records_are_followed_by_two_blank_lines() {
        let mut p = Printer::new(false);
        p.table(&[rec(&[("a ( RO)", "1")]), rec(&[("a ( RO)", "2")])]);
        let (out, _) = p.finish(true);
        assert_eq!(out, "a ( RO)    : 1\n\n\na ( RO)    : 2\n\n\n");
    }

    #[test]
    fn minimal_prints_first_values_comma_joined_and_escaped() {
        let mut p = Printer::new(true);
        p.table(&[rec(&[("uuid ( RO)", "a,b")]), rec(&[("uuid ( RO)", "c")])]);
        let (out, _) = p.finish(true);
        assert_eq!(out, "a\\,b,c\n");
    }

    #[test]
    fn minimal_with_nothing_prints_an_empty_line() {
        let (out, _) = Printer::new(true).finish(true);
        assert_eq!(out, "\n");
    }
}
