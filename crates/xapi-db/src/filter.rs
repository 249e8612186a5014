//! The `get_all_records_where` filter language: parser, evaluator and the stored text form.
//!
//! Grammar (whitespace is free between tokens):
//!
//! ```text
//! expr  := term (("and" | "or") term)*          and/or: equal precedence, left-associative
//! term  := "true" | "false" | "not" term | "(" expr ")" | value ("=" | "<>") value
//! value := "\"" literal "\"" | "field" "\"" column "\""
//! ```
//!
//! `not` binds tighter than `and`/`or` (it applies to the term right after it). Literals may
//! contain `\"` and `\\`. A column name is tried exactly first, then with every `__` replaced by
//! `_` (`name__label` means `name_label`).
//!
//! Comparison is string equality on [`stored_text`] of the column's value: strings, enums, refs
//! and datetimes as their text, ints in decimal, bools as `true`/`false`, doubles like C's
//! `%.16g`, sets as `('a' 'b')` and maps as `(('k' 'v') ('k2' 'v2'))` where each item is its own
//! stored text in single quotes with `'` and `\` escaped by a backslash. This module never
//! touches SQLite or locks.

use std::borrow::Cow;

use xapi_rpc::Value;

use crate::schema::{ColumnId, TableSchema};

/// A filter that did not parse, or names a column the table does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The text is not in the filter grammar.
    #[error("filter syntax error at byte {pos}: {reason}")]
    Syntax {
        /// Byte offset of the problem.
        pos: usize,
        /// What was expected.
        reason: String,
    },
    /// `field "x"` where the table has no column `x`.
    #[error("unknown field {0}")]
    UnknownField(String),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A quoted literal, unescaped.
    Literal(String),
    /// `field "name"`: the column's stored text.
    Field(String),
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `true`.
    True,
    /// `false`.
    False,
    /// `a = b`.
    Eq(Operand, Operand),
    /// `a <> b`.
    Neq(Operand, Operand),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// `not a`.
    Not(Box<Expr>),
}

impl Expr {
    /// Parses filter text (the `expr` argument of `get_all_records_where`).
    pub fn parse(text: &str) -> Result<Expr, FilterError> {
        let mut parser = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        };
        let expr = parser.expr(0)?;
        parser.skip_ws();
        if parser.pos != parser.bytes.len() {
            return Err(parser.error("trailing input"));
        }
        Ok(expr)
    }

    /// Checks that every `field` names a column of `table`.
    pub fn validate(&self, table: &TableSchema) -> Result<(), FilterError> {
        self.compile(table).map(|_| ())
    }

    /// Resolves column names; unknown names are an error.
    pub(crate) fn compile(&self, table: &TableSchema) -> Result<Compiled, FilterError> {
        let operand = |o: &Operand| -> Result<Op, FilterError> {
            match o {
                Operand::Literal(s) => Ok(Op::Literal(s.clone())),
                Operand::Field(name) => resolve_column(table, name)
                    .map(Op::Column)
                    .ok_or_else(|| FilterError::UnknownField(name.clone())),
            }
        };
        Ok(match self {
            Expr::True => Compiled::Const(true),
            Expr::False => Compiled::Const(false),
            Expr::Eq(a, b) => Compiled::Cmp(true, operand(a)?, operand(b)?),
            Expr::Neq(a, b) => Compiled::Cmp(false, operand(a)?, operand(b)?),
            Expr::And(a, b) => {
                Compiled::And(Box::new(a.compile(table)?), Box::new(b.compile(table)?))
            }
            Expr::Or(a, b) => {
                Compiled::Or(Box::new(a.compile(table)?), Box::new(b.compile(table)?))
            }
            Expr::Not(a) => Compiled::Not(Box::new(a.compile(table)?)),
        })
    }

    /// Resolves column names; an unknown column compares as the empty string.
    pub(crate) fn compile_lenient(&self, table: &TableSchema) -> Compiled {
        let operand = |o: &Operand| -> Op {
            match o {
                Operand::Literal(s) => Op::Literal(s.clone()),
                Operand::Field(name) => match resolve_column(table, name) {
                    Some(c) => Op::Column(c),
                    None => Op::Literal(String::new()),
                },
            }
        };
        match self {
            Expr::True => Compiled::Const(true),
            Expr::False => Compiled::Const(false),
            Expr::Eq(a, b) => Compiled::Cmp(true, operand(a), operand(b)),
            Expr::Neq(a, b) => Compiled::Cmp(false, operand(a), operand(b)),
            Expr::And(a, b) => Compiled::And(
                Box::new(a.compile_lenient(table)),
                Box::new(b.compile_lenient(table)),
            ),
            Expr::Or(a, b) => Compiled::Or(
                Box::new(a.compile_lenient(table)),
                Box::new(b.compile_lenient(table)),
            ),
            Expr::Not(a) => Compiled::Not(Box::new(a.compile_lenient(table))),
        }
    }
}

/// Finds a column by exact name, then with `__` read as `_`.
pub fn resolve_column(table: &TableSchema, name: &str) -> Option<ColumnId> {
    if let Some(c) = table.columns.iter().position(|c| c.name == name) {
        return Some(c);
    }
    if name.contains("__") {
        let flat = name.replace("__", "_");
        return table.columns.iter().position(|c| c.name == flat);
    }
    None
}

/// A comparison side with its column resolved.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Literal(String),
    Column(ColumnId),
}

/// An expression with columns resolved, ready to run over rows.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    Const(bool),
    Cmp(bool, Op, Op),
    And(Box<Compiled>, Box<Compiled>),
    Or(Box<Compiled>, Box<Compiled>),
    Not(Box<Compiled>),
}

impl Compiled {
    /// Whether the row matches.
    pub fn matches(&self, row: &[Value]) -> bool {
        match self {
            Compiled::Const(b) => *b,
            Compiled::Cmp(eq, a, b) => (op_text(a, row) == op_text(b, row)) == *eq,
            Compiled::And(a, b) => a.matches(row) && b.matches(row),
            Compiled::Or(a, b) => a.matches(row) || b.matches(row),
            Compiled::Not(a) => !a.matches(row),
        }
    }
}

fn op_text<'r>(op: &'r Op, row: &'r [Value]) -> Cow<'r, str> {
    match op {
        Op::Literal(s) => Cow::Borrowed(s.as_str()),
        Op::Column(c) => row.get(*c).map(stored_text).unwrap_or_default(),
    }
}

/// The text a filter compares a value as (see the module doc).
pub fn stored_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) | Value::DateTime(s) => Cow::Borrowed(s.as_str()),
        Value::Int(i) => Cow::Owned(i.to_string()),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Double(f) => Cow::Owned(format_g16(*f)),
        Value::Nil => Cow::Borrowed(""),
        Value::Base64(_) => Cow::Owned(crate::json::to_json(value)),
        Value::Array(items) => {
            let mut out = String::from("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                push_quoted(&mut out, &stored_text(item));
            }
            out.push(')');
            Cow::Owned(out)
        }
        Value::Struct(members) => {
            let mut out = String::from("(");
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push('(');
                push_quoted(&mut out, key);
                out.push(' ');
                push_quoted(&mut out, &stored_text(item));
                out.push(')');
            }
            out.push(')');
            Cow::Owned(out)
        }
    }
}

fn push_quoted(out: &mut String, text: &str) {
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
}

/// Formats a double like C's `printf("%.16g")`.
pub fn format_g16(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    const PRECISION: i32 = 16;
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..PRECISION).contains(&exp) {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (PRECISION - 1 - exp) as usize;
        strip_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn strip_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Nesting deeper than this is refused (the filter comes from the network).
const MAX_DEPTH: usize = 200;

impl Parser<'_> {
    fn error(&self, reason: &str) -> FilterError {
        FilterError::Syntax {
            pos: self.pos,
            reason: reason.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// The next bare word (letters and `_`), without consuming it.
    fn peek_word(&mut self) -> &str {
        self.skip_ws();
        let end = self.bytes[self.pos..]
            .iter()
            .position(|b| !(b.is_ascii_alphabetic() || *b == b'_'))
            .map_or(self.bytes.len(), |n| self.pos + n);
        &self.text[self.pos..end]
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut left = self.term(depth)?;
        loop {
            match self.peek_word() {
                "and" => {
                    self.pos += 3;
                    let right = self.term(depth)?;
                    left = Expr::And(Box::new(left), Box::new(right));
                }
                "or" => {
                    self.pos += 2;
                    let right = self.term(depth)?;
                    left = Expr::Or(Box::new(left), Box::new(right));
                }
                _ => return Ok(left),
            }
        }
    }

    fn term(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.peek_word() {
            "true" => {
                self.pos += 4;
                return Ok(Expr::True);
            }
            "false" => {
                self.pos += 5;
                return Ok(Expr::False);
            }
            "not" => {
                self.pos += 3;
                return Ok(Expr::Not(Box::new(self.term(depth + 1)?)));
            }
            _ => {}
        }
        if self.bytes.get(self.pos) == Some(&b'(') {
            self.pos += 1;
            let inner = self.expr(depth + 1)?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b')') {
                return Err(self.error("expected ')'"));
            }
            self.pos += 1;
            return Ok(inner);
        }
        let left = self.operand()?;
        self.skip_ws();
        let equal = if self.bytes[self.pos..].starts_with(b"=") {
            self.pos += 1;
            true
        } else if self.bytes[self.pos..].starts_with(b"<>") {
            self.pos += 2;
            false
        } else {
            return Err(self.error("expected '=' or '<>'"));
        };
        let right = self.operand()?;
        Ok(if equal {
            Expr::Eq(left, right)
        } else {
            Expr::Neq(left, right)
        })
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        if self.peek_word() == "field" {
            self.pos += 5;
            self.skip_ws();
            return Ok(Operand::Field(self.literal()?));
        }
        Ok(Operand::Literal(self.literal()?))
    }

    fn literal(&mut self) -> Result<String, FilterError> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return Err(self.error("expected a quoted literal or field"));
        }
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.text[self.pos..].char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += offset + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        self.pos = self.bytes.len();
        Err(self.error("unterminated literal"))
    }
}

// Tests unwrap: a failure there is the assertion.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schema::{ColumnKind, ColumnSchema};

    fn field(name: &str) -> Operand {
        Operand::Field(name.into())
    }

    fn lit(text: &str) -> Operand {
        Operand::Literal(text.into())
    }

    fn table() -> TableSchema {
        let column = |name: &str, kind| ColumnSchema {
            name: name.into(),
            kind,
            default: Value::Nil,
        };
        TableSchema {
            name: "T".into(),
            columns: vec![
                column("name_label", ColumnKind::String),
                column("n", ColumnKind::Int),
                column("on", ColumnKind::Bool),
                column("x", ColumnKind::Float),
                column("tags", ColumnKind::Set),
                column("other_config", ColumnKind::Map),
            ],
        }
    }

    fn row() -> Vec<Value> {
        vec![
            Value::String("vm \"one\"".into()),
            Value::Int(-3),
            Value::Bool(true),
            Value::Double(0.1),
            Value::Array(vec!["a".into(), "b'c".into()]),
            Value::Struct(vec![("k".into(), "v".into())]),
        ]
    }

    fn matches(text: &str) -> bool {
        Expr::parse(text)
            .unwrap()
            .compile(&table())
            .unwrap()
            .matches(&row())
    }

    #[test]
    fn parses_comparison_with_field_and_literal() {
        assert_eq!(
            Expr::parse(r#"field "name_label" = "x""#).unwrap(),
            Expr::Eq(field("name_label"), lit("x"))
        );
        assert_eq!(
            Expr::parse(r#""a"<>"b""#).unwrap(),
            Expr::Neq(lit("a"), lit("b"))
        );
    }

    #[test]
    fn and_or_have_equal_precedence_left_associative() {
        // true or false and false = (true or false) and false = false.
        assert_eq!(
            Expr::parse("true or false and false").unwrap(),
            Expr::And(
                Box::new(Expr::Or(Box::new(Expr::True), Box::new(Expr::False))),
                Box::new(Expr::False)
            )
        );
        assert!(!matches("true or false and false"));
        assert!(matches("true or (false and false)"));
    }

    #[test]
    fn not_binds_to_the_next_term() {
        assert_eq!(
            Expr::parse("not true or true").unwrap(),
            Expr::Or(
                Box::new(Expr::Not(Box::new(Expr::True))),
                Box::new(Expr::True)
            )
        );
        assert!(matches("not true or true"));
        assert!(!matches("not (true or true)"));
    }

    #[test]
    fn escaped_quotes_in_literals() {
        assert!(matches(r#"field "name_label" = "vm \"one\"""#));
    }

    #[test]
    fn double_underscore_means_underscore() {
        assert!(matches(r#"field "name__label" = "vm \"one\"""#));
        assert_eq!(resolve_column(&table(), "other__config"), Some(5));
    }

    #[test]
    fn unknown_field_is_an_error() {
        let expr = Expr::parse(r#"field "nope" = """#).unwrap();
        assert_eq!(
            expr.validate(&table()),
            Err(FilterError::UnknownField("nope".into()))
        );
        // The lenient form compares it as the empty string.
        assert!(expr.compile_lenient(&table()).matches(&row()));
    }

    #[test]
    fn typed_columns_compare_as_stored_text() {
        assert!(matches(r#"field "n" = "-3""#));
        assert!(matches(r#"field "on" = "true""#));
        assert!(matches(r#"field "x" = "0.1""#));
        assert!(matches(r#"field "tags" = "('a' 'b\\'c')""#));
        assert!(matches(r#"field "other_config" = "(('k' 'v'))""#));
    }

    #[test]
    fn whitespace_is_free() {
        assert!(matches(r#"(field"n"="-3")and(not(false))"#));
        assert!(matches("  true  "));
    }

    #[test]
    fn syntax_errors_are_reported() {
        for text in [
            "",
            "true and",
            "\"a\"",
            "field x = \"a\"",
            "(true",
            "\"a\" = \"b",
            "maybe",
            "true true",
        ] {
            assert!(
                matches!(Expr::parse(text), Err(FilterError::Syntax { .. })),
                "{text}"
            );
        }
        assert!(Expr::parse(&"(".repeat(10_000)).is_err());
    }

    #[test]
    fn g16_formats_like_c() {
        assert_eq!(format_g16(0.1), "0.1");
        assert_eq!(format_g16(1.0), "1");
        assert_eq!(format_g16(-2.5), "-2.5");
        assert_eq!(format_g16(1e16), "1e+16");
        assert_eq!(format_g16(123456789012345.0), "123456789012345");
        assert_eq!(format_g16(0.0001), "0.0001");
        assert_eq!(format_g16(0.00001), "1e-05");
        assert_eq!(format_g16(1.0 / 3.0), "0.3333333333333333");
        assert_eq!(format_g16(0.0), "0");
    }
}
