//! XML-RPC decoding: `methodCall`, `methodResponse` and lone `<value>` documents into `Value`s.
//!
//! A single pass over quick-xml's streaming reader (no DOM). Input is accepted liberally, as
//! xapi does (`WIRE.md` sections 3 and 4): bare or `<string>` text, `<i4>`/`<int>`/`<i8>`,
//! `<boolean>` as `1`/`0`/`true`/`false`, `<nil/>`, empty `<value/>`, whitespace between
//! elements, comments, entity and character references and CDATA. Nesting is tracked on an
//! explicit stack (never by recursion) and bounded by `Limits`, so no input can exhaust the
//! stack or allocate beyond what its own size and the limits allow. Document type
//! declarations are refused.

use std::borrow::Cow;

use base64::Engine as _;
use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::Reader;

use crate::error::quote;
use crate::{Budget, Call, DecodeError, Limits, Response, Value};

/// Decodes a `methodCall` document.
pub fn decode_call(body: &[u8], limits: &Limits) -> Result<Call, DecodeError> {
    limits.check_body(body)?;
    let mut parser = Parser::new(body, limits);
    parser.expect_open(b"methodCall")?;
    parser.expect_open(b"methodName")?;
    let method = parser.read_text(b"methodName")?;
    // Method names never contain whitespace; pretty-printed bodies may surround them with it.
    let method = method.trim_matches(is_xml_space).to_owned();
    let mut params = Vec::new();
    match parser.next_tag()? {
        Tag::Open(ref start) if start_name(start) == b"params" => {
            while parser.open_or_close(b"param", b"params")? {
                parser.expect_open(b"value")?;
                params.push(parser.parse_value()?);
                parser.expect_close(b"param")?;
            }
            parser.expect_close(b"methodCall")?;
        }
        Tag::Close(ref end) if end_name(end) == b"methodCall" => {}
        other => return Err(parser.unexpected(other, "<params> or </methodCall>")),
    }
    parser.expect_end()?;
    Ok(Call { method, params })
}

/// Decodes a `methodResponse` document.
///
/// `Status: Success` yields `Success(Value)`, `Status: Failure` yields
/// `Failure([code, params...])`, a `<fault>` yields `Fault`; any other parameter (such as
/// the bare array of `system.listMethods`) is `Success` of the parameter itself, and an
/// empty `<params/>` is `Success` of the empty string (a `void` result).
pub fn decode_response(body: &[u8], limits: &Limits) -> Result<Response, DecodeError> {
    limits.check_body(body)?;
    let mut parser = Parser::new(body, limits);
    parser.expect_open(b"methodResponse")?;
    let response = match parser.next_tag()? {
        Tag::Open(ref start) if start_name(start) == b"params" => {
            if parser.open_or_close(b"param", b"params")? {
                parser.expect_open(b"value")?;
                let value = parser.parse_value()?;
                parser.expect_close(b"param")?;
                parser.expect_close(b"params")?;
                envelope_of_value(value)?
            } else {
                Response::Success(Value::String(String::new()))
            }
        }
        Tag::Open(ref start) if start_name(start) == b"fault" => {
            parser.expect_open(b"value")?;
            let value = parser.parse_value()?;
            parser.expect_close(b"fault")?;
            fault_of_value(value)?
        }
        other => return Err(parser.unexpected(other, "<params> or <fault>")),
    };
    parser.expect_close(b"methodResponse")?;
    parser.expect_end()?;
    Ok(response)
}

/// Decodes a lone `<value>...</value>` document (such as a `task.result` string).
pub fn decode_value(text: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    limits.check_body(text)?;
    let mut parser = Parser::new(text, limits);
    parser.expect_open(b"value")?;
    let value = parser.parse_value()?;
    parser.expect_end()?;
    Ok(value)
}

/// Interprets the single parameter of a `methodResponse`.
fn envelope_of_value(value: Value) -> Result<Response, DecodeError> {
    const CONTEXT: &str = "methodResponse";
    let status = match value.get("Status") {
        Some(Value::String(status)) if status == "Success" || status == "Failure" => status.clone(),
        _ => return Ok(Response::Success(value)),
    };
    let Value::Struct(members) = value else {
        return Err(DecodeError::shape(CONTEXT, "status outside a struct"));
    };
    if status == "Success" {
        let value = members
            .into_iter()
            .find(|(name, _)| name == "Value")
            .map(|(_, v)| v);
        return value
            .map(Response::Success)
            .ok_or_else(|| DecodeError::shape(CONTEXT, "Status Success without Value"));
    }
    let description = members
        .into_iter()
        .find(|(name, _)| name == "ErrorDescription");
    let Some((_, Value::Array(items))) = description else {
        return Err(DecodeError::shape(
            CONTEXT,
            "Status Failure without ErrorDescription array",
        ));
    };
    let strings = items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s),
            Value::Int(i) => Ok(i.to_string()),
            other => Err(DecodeError::shape(
                CONTEXT,
                format!("ErrorDescription holds a {}", other.kind()),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if strings.is_empty() {
        return Err(DecodeError::shape(CONTEXT, "empty ErrorDescription"));
    }
    Ok(Response::Failure(strings))
}

/// Interprets the value of a `<fault>`.
fn fault_of_value(value: Value) -> Result<Response, DecodeError> {
    const CONTEXT: &str = "fault";
    let code = match value.get("faultCode") {
        Some(Value::Int(code)) => *code,
        Some(Value::String(text)) => parse_int(text)?,
        _ => return Err(DecodeError::shape(CONTEXT, "missing integer faultCode")),
    };
    let message = match value.get("faultString") {
        Some(Value::String(message)) => message.clone(),
        _ => return Err(DecodeError::shape(CONTEXT, "missing string faultString")),
    };
    Ok(Response::Fault { code, message })
}

/// A structural event: element start or end, text having been skipped if blank.
#[derive(Debug)]
enum Tag<'a> {
    /// An element opened (`<x>`, or `<x/>` which quick-xml expands).
    Open(BytesStart<'a>),
    /// An element closed.
    Close(BytesEnd<'a>),
    /// End of input.
    Eof,
}

/// An array or struct whose members are still being read.
enum Frame {
    /// `<array>`: the items so far.
    Array(Vec<Value>),
    /// `<struct>`: the members so far and the name of the member whose value is being read.
    Struct(Vec<(String, Value)>, String),
}

impl Frame {
    fn into_value(self) -> Value {
        match self {
            Frame::Array(items) => Value::Array(items),
            Frame::Struct(members, _) => Value::Struct(members),
        }
    }
}

/// What follows a `<value>` start tag.
enum ValueStart {
    /// A complete scalar, its `</value>` consumed.
    Scalar(Value),
    /// `<array><data>` was consumed.
    Array,
    /// `<struct>` was consumed.
    Struct,
}

/// A streaming XML-RPC reader over one document.
struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    budget: Budget,
}

impl<'a> Parser<'a> {
    fn new(body: &'a [u8], limits: &Limits) -> Self {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let mut reader = Reader::from_reader(body);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        // The parser checks every end tag against what it expects itself, which is cheaper
        // than quick-xml's own stack of open names.
        config.check_end_names = false;
        config.trim_text(false);
        Parser {
            reader,
            budget: Budget::new(limits),
        }
    }

    /// The next event that matters: comments, processing instructions and the XML
    /// declaration are skipped; a DTD is refused.
    #[inline]
    fn next_event(&mut self) -> Result<Event<'a>, DecodeError> {
        loop {
            let event = self
                .reader
                .read_event()
                .map_err(|err| self.xml_error(err))?;
            match event {
                Event::Comment(_) | Event::PI(_) | Event::Decl(_) => continue,
                Event::DocType(_) => {
                    return Err(self.xml_error("document type declarations are not accepted"))
                }
                other => return Ok(other),
            }
        }
    }

    /// The next start or end tag; blank text in between is skipped, other text is an error.
    #[inline]
    fn next_tag(&mut self) -> Result<Tag<'a>, DecodeError> {
        loop {
            let event = self
                .reader
                .read_event()
                .map_err(|err| self.xml_error(err))?;
            match event {
                Event::Start(start) => return Ok(Tag::Open(start)),
                Event::End(end) => return Ok(Tag::Close(end)),
                Event::Text(text) if text.iter().all(|&b| is_xml_space_byte(b)) => continue,
                Event::Text(text) => {
                    let text = String::from_utf8_lossy(&text).into_owned();
                    return Err(self.shape(format!("unexpected text {:?}", quote(&text))));
                }
                Event::CData(_) => return Err(self.shape("unexpected CDATA section")),
                Event::Eof => return Ok(Tag::Eof),
                Event::Empty(_) | Event::Comment(_) | Event::PI(_) | Event::Decl(_) => continue,
                Event::DocType(_) => {
                    return Err(self.xml_error("document type declarations are not accepted"))
                }
            }
        }
    }

    /// Consumes `<name>` or fails.
    #[inline]
    fn expect_open(&mut self, name: &'static [u8]) -> Result<(), DecodeError> {
        match self.next_tag()? {
            Tag::Open(ref found) if start_name(found) == name => Ok(()),
            other => Err(self.unexpected(other, open_label(name))),
        }
    }

    /// Consumes `</name>` or fails.
    #[inline]
    fn expect_close(&mut self, name: &'static [u8]) -> Result<(), DecodeError> {
        match self.next_tag()? {
            Tag::Close(ref found) if end_name(found) == name => Ok(()),
            other => Err(self.unexpected(other, close_label(name))),
        }
    }

    /// Consumes `<open>` (true) or `</close>` (false).
    #[inline]
    fn open_or_close(
        &mut self,
        open: &'static [u8],
        close: &'static [u8],
    ) -> Result<bool, DecodeError> {
        match self.next_tag()? {
            Tag::Open(ref found) if start_name(found) == open => Ok(true),
            Tag::Close(ref found) if end_name(found) == close => Ok(false),
            other => Err(self.unexpected(
                other,
                if open == b"value" {
                    "<value> or a closing tag"
                } else {
                    open_label(open)
                },
            )),
        }
    }

    /// Fails unless only blanks, comments and processing instructions remain.
    fn expect_end(&mut self) -> Result<(), DecodeError> {
        match self.next_tag()? {
            Tag::Eof => Ok(()),
            other => Err(self.unexpected(other, "end of document")),
        }
    }

    /// Reads the character data of an element up to its `</name>`; elements inside it are
    /// an error. Borrows from the input when no unescaping was needed.
    fn read_text(&mut self, name: &[u8]) -> Result<Cow<'a, str>, DecodeError> {
        let mut text: Cow<'a, str> = Cow::Borrowed("");
        loop {
            match self.next_event()? {
                Event::Text(piece) => {
                    let piece = self.unescape(piece.into_inner())?;
                    append(&mut text, piece);
                }
                Event::CData(piece) => {
                    let piece = cdata_text(piece.into_inner())?;
                    append(&mut text, piece);
                }
                Event::End(end) if end_name(&end) == name => return Ok(text),
                Event::End(end) => return Err(self.unexpected(Tag::Close(end), &closing(name))),
                Event::Start(start) => {
                    return Err(self.unexpected(Tag::Open(start), &closing(name)));
                }
                Event::Eof => return Err(self.unexpected(Tag::Eof, &closing(name))),
                _ => continue,
            }
        }
    }

    /// Character data with entity and character references resolved; borrows from the input
    /// when it holds no reference.
    fn unescape(&self, raw: Cow<'a, [u8]>) -> Result<Cow<'a, str>, DecodeError> {
        let text = cdata_text(raw)?;
        if !text.as_bytes().contains(&b'&') {
            return Ok(text);
        }
        let unescaped = match text {
            Cow::Borrowed(text) => quick_xml::escape::unescape(text),
            Cow::Owned(text) => {
                quick_xml::escape::unescape(&text).map(|cow| Cow::Owned(cow.into_owned()))
            }
        };
        unescaped.map_err(|err| self.xml_error(err))
    }

    /// Parses one value whose `<value>` start tag was just consumed, up to and including its
    /// `</value>`.
    fn parse_value(&mut self) -> Result<Value, DecodeError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            // Here a `<value>` start tag has just been consumed.
            self.budget.take_item()?;
            let done = match self.value_start()? {
                ValueStart::Scalar(value) => value,
                ValueStart::Array => {
                    self.budget.check_depth(stack.len() + 1)?;
                    if self.next_array_item()? {
                        stack.push(Frame::Array(Vec::new()));
                        continue;
                    }
                    Value::Array(Vec::new())
                }
                ValueStart::Struct => {
                    self.budget.check_depth(stack.len() + 1)?;
                    if let Some(name) = self.next_member()? {
                        stack.push(Frame::Struct(Vec::new(), name));
                        continue;
                    }
                    Value::Struct(Vec::new())
                }
            };
            if let Some(value) = self.attach(done, &mut stack)? {
                return Ok(value);
            }
        }
    }

    /// Attaches a finished value to the innermost open container, closing every container it
    /// completes. Returns the top-level value once everything is closed, or `None` when a new
    /// `<value>` was opened and must be parsed next.
    fn attach(
        &mut self,
        mut done: Value,
        stack: &mut Vec<Frame>,
    ) -> Result<Option<Value>, DecodeError> {
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok(Some(done));
            };
            match frame {
                Frame::Array(items) => {
                    items.push(done);
                    if self.next_array_item()? {
                        return Ok(None);
                    }
                }
                Frame::Struct(members, name) => {
                    members.push((std::mem::take(name), done));
                    self.expect_close(b"member")?;
                    if let Some(next) = self.next_member()? {
                        *name = next;
                        return Ok(None);
                    }
                }
            }
            match stack.pop() {
                Some(frame) => done = frame.into_value(),
                None => return Err(self.shape("internal nesting error")),
            }
        }
    }

    /// Inside `<array><data>`: true when a `<value>` opened, false when `</data></array>` and
    /// the array's `</value>` were consumed.
    fn next_array_item(&mut self) -> Result<bool, DecodeError> {
        if self.open_or_close(b"value", b"data")? {
            return Ok(true);
        }
        self.expect_close(b"array")?;
        self.expect_close(b"value")?;
        Ok(false)
    }

    /// Inside `<struct>`: the next member's name with its `<value>` consumed, or `None` when
    /// `</struct>` and the struct's `</value>` were consumed.
    fn next_member(&mut self) -> Result<Option<String>, DecodeError> {
        if !self.open_or_close(b"member", b"struct")? {
            self.expect_close(b"value")?;
            return Ok(None);
        }
        match self.next_tag()? {
            Tag::Open(ref found) if start_name(found) == b"name" => {}
            Tag::Open(ref found) if start_name(found) == b"value" => {
                return Err(DecodeError::shape("struct member", "member without a name"))
            }
            other => return Err(self.unexpected(other, "<name>")),
        }
        let name = self.read_text(b"name")?.into_owned();
        self.expect_open(b"value")?;
        Ok(Some(name))
    }

    /// Reads what follows `<value>`: a scalar through its `</value>`, or the opening of an
    /// array (through `<data>`) or struct.
    fn value_start(&mut self) -> Result<ValueStart, DecodeError> {
        let mut text: Cow<'a, str> = Cow::Borrowed("");
        loop {
            match self.next_event()? {
                Event::Text(piece) => {
                    let piece = self.unescape(piece.into_inner())?;
                    append(&mut text, piece);
                }
                Event::CData(piece) => append(&mut text, cdata_text(piece.into_inner())?),
                // `<value>text</value>`, `<value></value>` and `<value/>`: a bare string.
                Event::End(end) if end_name(&end) == b"value" => {
                    return Ok(ValueStart::Scalar(Value::String(text.into_owned())))
                }
                Event::End(end) => return Err(self.unexpected(Tag::Close(end), "</value>")),
                Event::Start(start) => {
                    if !text.chars().all(is_xml_space) {
                        return Err(
                            self.shape(format!("text {:?} mixed with a typed value", quote(&text)))
                        );
                    }
                    return self.typed_value(start);
                }
                Event::Eof => return Err(self.unexpected(Tag::Eof, "</value>")),
                _ => continue,
            }
        }
    }

    /// Reads a typed value element whose start tag is `start`, then the closing `</value>`.
    fn typed_value(&mut self, start: BytesStart<'a>) -> Result<ValueStart, DecodeError> {
        let value = match start_name(&start) {
            b"string" => Value::String(self.read_text(b"string")?.into_owned()),
            name @ (b"i4" | b"int" | b"i8") => Value::Int(parse_int(&self.read_text(name)?)?),
            b"boolean" => Value::Bool(parse_bool(&self.read_text(b"boolean")?)?),
            b"double" => Value::Double(parse_double(&self.read_text(b"double")?)?),
            b"dateTime.iso8601" => {
                Value::DateTime(self.read_text(b"dateTime.iso8601")?.into_owned())
            }
            b"base64" => Value::Base64(parse_base64(&self.read_text(b"base64")?)?),
            b"nil" => {
                self.read_text(b"nil")?;
                Value::Nil
            }
            b"array" => {
                return if self.open_or_close(b"data", b"array")? {
                    Ok(ValueStart::Array)
                } else {
                    // Liberal: `<array/>` without `<data>` is an empty array.
                    self.expect_close(b"value")?;
                    Ok(ValueStart::Scalar(Value::Array(Vec::new())))
                };
            }
            b"struct" => return Ok(ValueStart::Struct),
            _ => {
                let found = String::from_utf8_lossy(start_name(&start)).into_owned();
                return Err(DecodeError::shape(
                    "value",
                    format!("unknown value type <{}>", quote(&found)),
                ));
            }
        };
        self.expect_close(b"value")?;
        Ok(ValueStart::Scalar(value))
    }

    /// A `Xml` error at the reader's current position.
    #[cold]
    #[inline(never)]
    fn xml_error(&self, message: impl std::fmt::Display) -> DecodeError {
        DecodeError::Xml {
            position: self.reader.error_position(),
            message: message.to_string(),
        }
    }

    /// A `Shape` error mentioning the current position.
    #[cold]
    #[inline(never)]
    fn shape(&self, message: impl std::fmt::Display) -> DecodeError {
        DecodeError::shape(
            "XML-RPC document",
            format!("{message} at byte {}", self.reader.buffer_position()),
        )
    }

    /// A `Shape` error for finding `found` where `expected` belongs.
    #[cold]
    #[inline(never)]
    fn unexpected(&self, found: Tag<'_>, expected: &str) -> DecodeError {
        let found = match found {
            Tag::Open(start) => {
                format!("<{}>", quote(&String::from_utf8_lossy(start_name(&start))))
            }
            Tag::Close(end) => format!("</{}>", quote(&String::from_utf8_lossy(end_name(&end)))),
            Tag::Eof => "end of document".to_owned(),
        };
        self.shape(format!("expected {expected}, found {found}"))
    }
}

/// `<name>` for error messages.
fn open_label(name: &'static [u8]) -> &'static str {
    match name {
        b"methodCall" => "<methodCall>",
        b"methodName" => "<methodName>",
        b"methodResponse" => "<methodResponse>",
        b"params" => "<params>",
        b"param" => "<param>",
        b"value" => "<value>",
        b"member" => "<member>",
        b"data" => "<data>",
        _ => "an opening tag",
    }
}

/// `</name>` for error messages.
fn close_label(name: &'static [u8]) -> &'static str {
    match name {
        b"methodCall" => "</methodCall>",
        b"methodName" => "</methodName>",
        b"methodResponse" => "</methodResponse>",
        b"params" => "</params>",
        b"param" => "</param>",
        b"value" => "</value>",
        b"member" => "</member>",
        b"array" => "</array>",
        b"struct" => "</struct>",
        b"fault" => "</fault>",
        b"name" => "</name>",
        _ => "a closing tag",
    }
}

/// `</name>` for error messages about any element.
fn closing(name: &[u8]) -> String {
    format!("</{}>", quote(&String::from_utf8_lossy(name)))
}

/// A start tag's name without any namespace prefix (`ex:nil` -> `nil`).
#[inline]
fn start_name<'s>(start: &'s BytesStart<'_>) -> &'s [u8] {
    strip_prefix(start.name().into_inner())
}

/// An end tag's name without any namespace prefix.
#[inline]
fn end_name<'s>(end: &'s BytesEnd<'_>) -> &'s [u8] {
    strip_prefix(end.name().into_inner())
}

/// The part of a qualified name after its first `:`.
#[inline]
fn strip_prefix(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b':') {
        Some(colon) => &name[colon + 1..],
        None => name,
    }
}

/// Appends `piece` to `text`, keeping it borrowed while it is the only piece.
#[inline]
fn append<'a>(text: &mut Cow<'a, str>, piece: Cow<'a, str>) {
    if text.is_empty() {
        *text = piece;
    } else {
        text.to_mut().push_str(&piece);
    }
}

/// Raw bytes (a CDATA section's content, or character data) as text.
fn cdata_text(bytes: Cow<'_, [u8]>) -> Result<Cow<'_, str>, DecodeError> {
    match bytes {
        Cow::Borrowed(bytes) => std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|_| DecodeError::InvalidUtf8),
        Cow::Owned(bytes) => String::from_utf8(bytes)
            .map(Cow::Owned)
            .map_err(|_| DecodeError::InvalidUtf8),
    }
}

/// XML's white space characters.
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// XML's white space characters, as bytes.
fn is_xml_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Parses the text of `<i4>`, `<int>` or `<i8>` (or a fault code): a decimal 64-bit integer,
/// optionally signed and surrounded by blanks.
pub(crate) fn parse_int(text: &str) -> Result<i64, DecodeError> {
    text.trim_matches(is_xml_space)
        .parse()
        .map_err(|_| DecodeError::BadInt(quote(text)))
}

/// Parses the text of `<boolean>`: `1`/`true` or `0`/`false`.
fn parse_bool(text: &str) -> Result<bool, DecodeError> {
    let trimmed = text.trim_matches(is_xml_space);
    // Compatibility: xapi itself only ever writes 1 and 0; `true`/`false` come from other
    // XML-RPC libraries.
    if trimmed == "1" || trimmed.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if trimmed == "0" || trimmed.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(DecodeError::BadBool(quote(text)))
    }
}

/// Parses the text of `<double>`, including `inf`, `-inf` and `nan` as C prints them.
fn parse_double(text: &str) -> Result<f64, DecodeError> {
    text.trim_matches(is_xml_space)
        .parse()
        .map_err(|_| DecodeError::BadDouble(quote(text)))
}

/// The standard alphabet, padding optional, as other XML-RPC libraries may omit it.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Decodes the text of `<base64>`, ignoring line breaks and other blanks.
fn parse_base64(text: &str) -> Result<Vec<u8>, DecodeError> {
    let result = if text.bytes().any(is_xml_space_byte) {
        let compact: Vec<u8> = text.bytes().filter(|&b| !is_xml_space_byte(b)).collect();
        BASE64.decode(compact)
    } else {
        BASE64.decode(text)
    };
    result.map_err(|err| DecodeError::BadBase64(err.to_string()))
}

#[cfg(test)]
// Tests may unwrap: a panic is a test failure.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn value(text: &str) -> Value {
        decode_value(text.as_bytes(), &Limits::default()).unwrap()
    }

    fn value_err(text: &str) -> DecodeError {
        decode_value(text.as_bytes(), &Limits::default()).unwrap_err()
    }

    fn call(text: &str) -> Result<Call, DecodeError> {
        decode_call(text.as_bytes(), &Limits::default())
    }

    fn response(text: &str) -> Result<Response, DecodeError> {
        decode_response(text.as_bytes(), &Limits::default())
    }

    #[test]
    fn bare_text_is_string() {
        assert_eq!(value("<value>OpaqueRef:x</value>"), "OpaqueRef:x".into());
    }

    #[test]
    fn string_element_is_string() {
        assert_eq!(
            value("<value><string>Halted</string></value>"),
            "Halted".into()
        );
        assert_eq!(value("<value><string/></value>"), "".into());
    }

    #[test]
    fn empty_values_are_empty_strings() {
        assert_eq!(value("<value/>"), "".into());
        assert_eq!(value("<value></value>"), "".into());
    }

    #[test]
    fn bare_text_keeps_its_blanks() {
        assert_eq!(value("<value>  a b \n</value>"), "  a b \n".into());
    }

    #[test]
    fn all_int_tags_are_int() {
        assert_eq!(value("<value><i4>-42</i4></value>"), Value::Int(-42));
        assert_eq!(value("<value><int>7</int></value>"), Value::Int(7));
        assert_eq!(
            value("<value><i8>9223372036854775807</i8></value>"),
            Value::Int(i64::MAX)
        );
        assert_eq!(value("<value><ex:i8> +5 </ex:i8></value>"), Value::Int(5));
    }

    #[test]
    fn bad_ints_are_rejected() {
        assert!(matches!(
            value_err("<value><int>12a</int></value>"),
            DecodeError::BadInt(_)
        ));
        assert!(matches!(
            value_err("<value><i8>9223372036854775808</i8></value>"),
            DecodeError::BadInt(_)
        ));
        assert!(matches!(
            value_err("<value><int/></value>"),
            DecodeError::BadInt(_)
        ));
    }

    #[test]
    fn booleans() {
        assert_eq!(
            value("<value><boolean>1</boolean></value>"),
            Value::Bool(true)
        );
        assert_eq!(
            value("<value><boolean>0</boolean></value>"),
            Value::Bool(false)
        );
        assert_eq!(
            value("<value><boolean>true</boolean></value>"),
            Value::Bool(true)
        );
        assert_eq!(
            value("<value><boolean>false</boolean></value>"),
            Value::Bool(false)
        );
        assert!(matches!(
            value_err("<value><boolean>yes</boolean></value>"),
            DecodeError::BadBool(_)
        ));
    }

    #[test]
    fn doubles() {
        assert_eq!(
            value("<value><double>1</double></value>"),
            Value::Double(1.0)
        );
        assert_eq!(
            value("<value><double>-0.25e2</double></value>"),
            Value::Double(-25.0)
        );
        assert_eq!(
            value("<value><double>inf</double></value>"),
            Value::Double(f64::INFINITY)
        );
        assert!(matches!(
            value_err("<value><double>one</double></value>"),
            DecodeError::BadDouble(_)
        ));
        let Value::Double(nan) = value("<value><double>nan</double></value>") else {
            panic!("not a double");
        };
        assert!(nan.is_nan());
    }

    #[test]
    fn datetime_is_kept_verbatim() {
        assert_eq!(
            value("<value><dateTime.iso8601>20240131T09:05:00Z</dateTime.iso8601></value>"),
            Value::DateTime("20240131T09:05:00Z".into())
        );
    }

    #[test]
    fn nil_forms() {
        assert_eq!(value("<value><nil/></value>"), Value::Nil);
        assert_eq!(value("<value><nil></nil></value>"), Value::Nil);
        assert_eq!(value("<value><ex:nil/></value>"), Value::Nil);
    }

    #[test]
    fn base64_with_line_breaks_and_without_padding() {
        assert_eq!(
            value("<value><base64>aGVs\nbG8A</base64></value>"),
            Value::Base64(b"hello\0".to_vec())
        );
        assert_eq!(
            value("<value><base64>aGk</base64></value>"),
            Value::Base64(b"hi".to_vec())
        );
        assert_eq!(value("<value><base64/></value>"), Value::Base64(Vec::new()));
        assert!(matches!(
            value_err("<value><base64>!!!</base64></value>"),
            DecodeError::BadBase64(_)
        ));
    }

    #[test]
    fn entities_character_references_and_cdata() {
        assert_eq!(
            value("<value>a&lt;b&gt;&amp;&quot;&apos;&#65;&#x42;</value>"),
            "a<b>&\"'AB".into()
        );
        assert_eq!(value("<value>x<![CDATA[<y>&]]>z</value>"), "x<y>&z".into());
        assert_eq!(
            value("<value><string><![CDATA[]]]></string></value>"),
            "]".into()
        );
    }

    #[test]
    fn unknown_entity_is_rejected() {
        assert!(matches!(
            value_err("<value>&nbsp;</value>"),
            DecodeError::Xml { .. }
        ));
    }

    #[test]
    fn comments_are_ignored() {
        assert_eq!(value("<value>a<!-- c -->b</value>"), "ab".into());
        assert_eq!(
            value("<!-- c --><value><!-- c --><int>1</int><!-- c --></value>"),
            1.into()
        );
    }

    #[test]
    fn nested_arrays_and_structs_with_whitespace() {
        let text = "<value>\n <struct>\n  <member>\n   <name>a</name>\n   <value><array>\
                    <data>\n <value>1</value> <value><i4>2</i4></value>\n </data></array>\
                    </value>\n  </member>\n  <member><name>b</name><value><struct/></value>\
                    </member>\n  <member><name></name><value/></member>\n </struct>\n</value>";
        assert_eq!(
            value(text),
            Value::Struct(vec![
                ("a".into(), Value::Array(vec!["1".into(), Value::Int(2)])),
                ("b".into(), Value::Struct(Vec::new())),
                ("".into(), "".into()),
            ])
        );
    }

    #[test]
    fn empty_containers() {
        assert_eq!(
            value("<value><array><data/></array></value>"),
            Value::Array(Vec::new())
        );
        assert_eq!(
            value("<value><array></array></value>"),
            Value::Array(Vec::new())
        );
        assert_eq!(
            value("<value><struct></struct></value>"),
            Value::Struct(Vec::new())
        );
        assert_eq!(
            value(
                "<value><array><data><value><array><data/></array></value><value>x</value>\
                   </data></array></value>"
            ),
            Value::Array(vec![Value::Array(Vec::new()), "x".into()])
        );
        assert_eq!(
            value(
                "<value><struct><member><name>e</name><value><struct/></value></member>\
                   <member><name>f</name><value>1</value></member></struct></value>"
            ),
            Value::Struct(vec![
                ("e".into(), Value::Struct(Vec::new())),
                ("f".into(), "1".into())
            ])
        );
    }

    #[test]
    fn struct_member_without_name_is_rejected() {
        let err = value_err("<value><struct><member><value>1</value></member></struct></value>");
        assert!(matches!(err, DecodeError::Shape { .. }), "{err}");
    }

    #[test]
    fn struct_member_without_value_is_rejected() {
        let err = value_err("<value><struct><member><name>a</name></member></struct></value>");
        assert!(matches!(err, DecodeError::Shape { .. }), "{err}");
    }

    #[test]
    fn text_mixed_with_typed_value_is_rejected() {
        let err = value_err("<value>x<int>1</int></value>");
        assert!(matches!(err, DecodeError::Shape { .. }), "{err}");
    }

    #[test]
    fn unknown_type_is_rejected() {
        let err = value_err("<value><float>1</float></value>");
        assert!(err.to_string().contains("unknown value type"), "{err}");
    }

    #[test]
    fn mismatched_and_truncated_documents_are_rejected() {
        assert!(decode_value(b"<value><int>1</i4></value>", &Limits::default()).is_err());
        assert!(decode_value(b"<value><array><data><value>1</value>", &Limits::default()).is_err());
        assert!(decode_value(b"", &Limits::default()).is_err());
        assert!(decode_value(b"<value>1</value><value>2</value>", &Limits::default()).is_err());
    }

    #[test]
    fn mismatched_end_tags_are_rejected() {
        for text in [
            "<value>x</string>",
            "<value><string>x</value></string>",
            "<value><i4>1</int></value>",
            "<value><struct><member><name>a</value></name></member></struct></value>",
            "<value><array><data></array></data></value>",
        ] {
            let err = decode_value(text.as_bytes(), &Limits::default()).unwrap_err();
            assert!(matches!(err, DecodeError::Shape { .. }), "{text}: {err}");
        }
    }

    #[test]
    fn doctype_is_rejected() {
        let err = value_err("<!DOCTYPE value [<!ENTITY a \"b\">]><value>&a;</value>");
        assert!(matches!(err, DecodeError::Xml { .. }), "{err}");
    }

    #[test]
    fn depth_limit_is_enforced() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        let nested = |n: usize| {
            let mut text = String::new();
            for _ in 0..n {
                text.push_str("<value><array><data>");
            }
            text.push_str("<value>x</value>");
            for _ in 0..n {
                text.push_str("</data></array></value>");
            }
            text
        };
        assert!(decode_value(nested(3).as_bytes(), &limits).is_ok());
        assert_eq!(
            decode_value(nested(4).as_bytes(), &limits),
            Err(DecodeError::TooDeep(3))
        );
    }

    #[test]
    fn very_deep_nesting_fails_without_overflowing_the_stack() {
        let limits = Limits {
            max_depth: usize::MAX,
            ..Limits::default()
        };
        let text = "<value><struct><member><name>a</name>".repeat(200_000);
        assert!(decode_value(text.as_bytes(), &limits).is_err());
    }

    #[test]
    fn item_limit_is_enforced() {
        let limits = Limits {
            max_items: 3,
            ..Limits::default()
        };
        let two = "<value><array><data><value>1</value><value>2</value></data></array></value>";
        assert!(decode_value(two.as_bytes(), &limits).is_ok());
        let three = "<value><array><data><value>1</value><value>2</value><value>3</value>\
                     </data></array></value>";
        assert_eq!(
            decode_value(three.as_bytes(), &limits),
            Err(DecodeError::TooManyItems(3))
        );
    }

    #[test]
    fn body_limit_is_checked_first() {
        let limits = Limits {
            max_body: 10,
            ..Limits::default()
        };
        assert!(matches!(
            decode_call(
                b"<not even xml",
                &Limits {
                    max_body: 5,
                    ..limits
                }
            ),
            Err(DecodeError::TooLarge { size: 13, limit: 5 })
        ));
    }

    #[test]
    fn call_with_declaration_and_whitespace() {
        let text = "<?xml version=\"1.0\"?>\n<methodCall>\n  <methodName>VM.start</methodName>\n\
                    <params>\n <param><value><string>OpaqueRef:s</string></value></param>\n\
                    <param><value>OpaqueRef:v</value></param>\n\
                    <param><value><boolean>0</boolean></value></param>\n\
                    </params>\n</methodCall>\n";
        assert_eq!(
            call(text).unwrap(),
            Call::new(
                "VM.start",
                vec!["OpaqueRef:s".into(), "OpaqueRef:v".into(), false.into()]
            )
        );
    }

    #[test]
    fn call_without_declaration_or_params() {
        assert_eq!(
            call("<methodCall><methodName>system.listMethods</methodName></methodCall>").unwrap(),
            Call::new("system.listMethods", Vec::new())
        );
        assert_eq!(
            call("<methodCall><methodName> a.b\n</methodName><params/></methodCall>").unwrap(),
            Call::new("a.b", Vec::new())
        );
    }

    #[test]
    fn call_with_byte_order_mark() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(b"<methodCall><methodName>m</methodName></methodCall>");
        assert_eq!(decode_call(&body, &Limits::default()).unwrap().method, "m");
    }

    #[test]
    fn call_without_method_name_is_rejected() {
        let err = call("<methodCall><params></params></methodCall>").unwrap_err();
        assert!(err.to_string().contains("<methodName>"), "{err}");
    }

    #[test]
    fn call_with_two_values_in_a_param_is_rejected() {
        let err = call(
            "<methodCall><methodName>m</methodName><params><param><value>1</value>\
             <value>2</value></param></params></methodCall>",
        )
        .unwrap_err();
        assert!(matches!(err, DecodeError::Shape { .. }), "{err}");
    }

    #[test]
    fn call_with_trailing_garbage_is_rejected() {
        assert!(call("<methodCall><methodName>m</methodName></methodCall><x/>").is_err());
        assert!(call("<methodCall><methodName>m</methodName></methodCall>junk").is_err());
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let body = b"<methodCall><methodName>m</methodName><params><param><value>\xff\xfe\
                     </value></param></params></methodCall>";
        assert!(decode_call(body, &Limits::default()).is_err());
    }

    #[test]
    fn success_response() {
        let text = "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
                    <member><name>Status</name><value>Success</value></member>\
                    <member><name>Value</name><value>OpaqueRef:r</value></member>\
                    </struct></value></param></params></methodResponse>";
        assert_eq!(
            response(text).unwrap(),
            Response::Success("OpaqueRef:r".into())
        );
    }

    #[test]
    fn failure_response() {
        let text = "<methodResponse><params><param><value><struct>\
                    <member><name>Status</name><value>Failure</value></member>\
                    <member><name>ErrorDescription</name><value><array><data>\
                    <value>VM_BAD_POWER_STATE</value><value>OpaqueRef:v</value>\
                    <value>halted</value><value><int>3</int></value></data></array></value>\
                    </member></struct></value></param></params></methodResponse>";
        assert_eq!(
            response(text).unwrap(),
            Response::Failure(vec![
                "VM_BAD_POWER_STATE".into(),
                "OpaqueRef:v".into(),
                "halted".into(),
                "3".into()
            ])
        );
    }

    #[test]
    fn bare_response_is_success_of_the_param() {
        let text = "<methodResponse><params><param><value><array><data><value>VM.start</value>\
                    </data></array></value></param></params></methodResponse>";
        assert_eq!(
            response(text).unwrap(),
            Response::Success(Value::Array(vec!["VM.start".into()]))
        );
        let text = "<methodResponse><params><param><value><struct><member><name>Status</name>\
                    <value>Running</value></member></struct></value></param></params>\
                    </methodResponse>";
        assert!(matches!(
            response(text).unwrap(),
            Response::Success(Value::Struct(_))
        ));
    }

    #[test]
    fn empty_params_response_is_void() {
        assert_eq!(
            response("<methodResponse><params/></methodResponse>").unwrap(),
            Response::Success("".into())
        );
    }

    #[test]
    fn fault_response() {
        let text = "<methodResponse><fault><value><struct>\
                    <member><name>faultCode</name><value><int>4</int></value></member>\
                    <member><name>faultString</name><value>Too many parameters</value></member>\
                    </struct></value></fault></methodResponse>";
        assert_eq!(
            response(text).unwrap(),
            Response::Fault {
                code: 4,
                message: "Too many parameters".into()
            }
        );
    }

    #[test]
    fn malformed_envelopes_are_rejected() {
        let success_without_value = "<methodResponse><params><param><value><struct>\
            <member><name>Status</name><value>Success</value></member></struct></value>\
            </param></params></methodResponse>";
        assert!(response(success_without_value).is_err());
        let failure_without_description = "<methodResponse><params><param><value><struct>\
            <member><name>Status</name><value>Failure</value></member></struct></value>\
            </param></params></methodResponse>";
        assert!(response(failure_without_description).is_err());
        let fault_without_code = "<methodResponse><fault><value><struct>\
            <member><name>faultString</name><value>x</value></member></struct></value>\
            </fault></methodResponse>";
        assert!(response(fault_without_code).is_err());
        assert!(response("<methodCall><methodName>m</methodName></methodCall>").is_err());
    }
}
