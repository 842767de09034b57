//! The `q` search language of `files.list`.
//!
//! Grammar (<https://developers.google.com/workspace/drive/api/guides/ref-search-terms>):
//! `query_term operator values`, combined with `and`, `or`, `not` and parentheses. Strings are
//! single-quoted; `\'` and `\\` escape a quote and a backslash
//! (<https://developers.google.com/workspace/drive/api/guides/search-files>). Supported terms:
//! `name`, `mimeType` (`=`, `!=`, `contains`), `trashed`, `starred` (`=`, `!=`),
//! `modifiedTime`, `createdTime` (comparisons), `'id' in parents`.

use chrono::{DateTime, Utc};

use super::store::DriveFile;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Str(String),
    Word(String),
    Op(&'static str),
    Open,
    Close,
}

fn tokenize(q: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i)? {
                        '\\' => {
                            s.push(*chars.get(i + 1)?);
                            i += 2;
                        }
                        '\'' => {
                            i += 1;
                            break;
                        }
                        other => {
                            s.push(*other);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(s));
            }
            '=' => {
                out.push(Token::Op("="));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Op("!="));
                i += 2;
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                out.push(Token::Op(match (c, eq) {
                    ('<', true) => "<=",
                    ('<', false) => "<",
                    (_, true) => ">=",
                    (_, false) => ">",
                }));
                i += if eq { 2 } else { 1 };
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                {
                    i += 1;
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Query {
    And(Box<Query>, Box<Query>),
    Or(Box<Query>, Box<Query>),
    Not(Box<Query>),
    InParents(String),
    Compare {
        field: String,
        op: &'static str,
        value: Literal,
    },
}

/// A value on the right of an operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Bool(bool),
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Option<Query> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Query::Or(Box::new(left), Box::new(self.and()?));
        }
        Some(left)
    }

    fn and(&mut self) -> Option<Query> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Query::And(Box::new(left), Box::new(self.unary()?));
        }
        Some(left)
    }

    fn unary(&mut self) -> Option<Query> {
        if self.peek_word("not") {
            self.pos += 1;
            return Some(Query::Not(Box::new(self.unary()?)));
        }
        if self.tokens.get(self.pos) == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.or()?;
            if self.tokens.get(self.pos) != Some(&Token::Close) {
                return None;
            }
            self.pos += 1;
            return Some(inner);
        }
        self.term()
    }

    fn term(&mut self) -> Option<Query> {
        match self.tokens.get(self.pos)?.clone() {
            Token::Str(value) => {
                if !self.peek_at(1, "in") || !self.peek_at(2, "parents") {
                    return None;
                }
                self.pos += 3;
                Some(Query::InParents(value))
            }
            Token::Word(field) => {
                let op = match self.tokens.get(self.pos + 1)? {
                    Token::Op(op) => *op,
                    Token::Word(w) if w == "contains" => "contains",
                    _ => return None,
                };
                let value = match self.tokens.get(self.pos + 2)? {
                    Token::Str(s) => Literal::Str(s.clone()),
                    Token::Word(w) if w == "true" => Literal::Bool(true),
                    Token::Word(w) if w == "false" => Literal::Bool(false),
                    _ => return None,
                };
                self.pos += 3;
                Some(Query::Compare { field, op, value })
            }
            _ => None,
        }
    }

    fn peek_at(&self, offset: usize, word: &str) -> bool {
        matches!(self.tokens.get(self.pos + offset), Some(Token::Word(w)) if w == word)
    }
}

impl Query {
    /// Parses `q`; `None` for a malformed or unsupported query.
    pub(crate) fn parse(q: &str) -> Option<Self> {
        let mut parser = Parser {
            tokens: tokenize(q)?,
            pos: 0,
        };
        let query = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return None;
        }
        query.check().then_some(query)
    }

    /// True when every term names a supported field with a fitting operator and value.
    fn check(&self) -> bool {
        match self {
            Self::And(a, b) | Self::Or(a, b) => a.check() && b.check(),
            Self::Not(a) => a.check(),
            Self::InParents(_) => true,
            Self::Compare { field, op, value } => match (field.as_str(), value) {
                ("name" | "mimeType", Literal::Str(_)) => matches!(*op, "=" | "!=" | "contains"),
                ("trashed" | "starred", Literal::Bool(_)) => matches!(*op, "=" | "!="),
                ("modifiedTime" | "createdTime", Literal::Str(s)) => {
                    parse_time(s).is_some() && !matches!(*op, "contains")
                }
                _ => false,
            },
        }
    }

    /// Evaluates the query for one file; `root` resolves the `'root'` alias.
    pub(crate) fn matches(&self, file: &DriveFile, root: &str) -> bool {
        match self {
            Self::And(a, b) => a.matches(file, root) && b.matches(file, root),
            Self::Or(a, b) => a.matches(file, root) || b.matches(file, root),
            Self::Not(a) => !a.matches(file, root),
            Self::InParents(id) => {
                let id = if id == "root" { root } else { id.as_str() };
                file.parents.iter().any(|p| p == id)
            }
            Self::Compare { field, op, value } => match (field.as_str(), value) {
                ("name", Literal::Str(s)) => name_op(&file.name, op, s),
                ("mimeType", Literal::Str(s)) => text_op(&file.mime_type, op, s),
                ("trashed", Literal::Bool(b)) => bool_op(file.trashed, op, *b),
                ("starred", Literal::Bool(b)) => bool_op(false, op, *b),
                ("modifiedTime", Literal::Str(s)) => time_op(file.modified, op, s),
                ("createdTime", Literal::Str(s)) => time_op(file.created, op, s),
                _ => false,
            },
        }
    }
}

/// `name =` and `name !=` compare without regard to case, although Drive keeps each
/// name's case and lets `Report.pdf` and `report.pdf` live side by side in one folder: "the
/// files API's `name=` is case-insensitive by default" (github.com/Achrou/goindex-theme-acrou
/// PR 86, where folders `haha` and `Haha` both answer a lookup of `haha`). Whether the folding
/// is Unicode-wide is UNCONFIRMED; the emulator folds every character (`char::to_lowercase`),
/// the reading that matches more files, so a client must filter the results by exact name.
fn name_op(actual: &str, op: &str, expected: &str) -> bool {
    match op {
        "=" => same_folded(actual, expected),
        "!=" => !same_folded(actual, expected),
        _ => text_op(actual, op, expected),
    }
}

/// Equal once lowercased. A lookup by name compares every file of the folder
/// (`cargo xtask bench`, scenario 2, profiled: two lowercased copies per file
/// were 5 % of all CPU), so two ASCII names compare in place; anything else is
/// lowercased whole, since a non-ASCII letter may lowercase to ASCII (the
/// Kelvin sign to `k`).
fn same_folded(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

/// `contains` on `name` is a prefix match ("The contains operator only performs prefix
/// matching for a name term", <https://developers.google.com/workspace/drive/api/guides/ref-search-terms>);
/// on other fields it is a substring match.
fn text_op(actual: &str, op: &str, expected: &str) -> bool {
    match op {
        "=" => actual == expected,
        "!=" => actual != expected,
        "contains" => actual
            .split(|c: char| !c.is_alphanumeric())
            .chain(std::iter::once(actual))
            .any(|word| word.to_lowercase().starts_with(&expected.to_lowercase())),
        _ => false,
    }
}

fn bool_op(actual: bool, op: &str, expected: bool) -> bool {
    match op {
        "=" => actual == expected,
        "!=" => actual != expected,
        _ => false,
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|n| n.and_utc())
        })
}

fn time_op(actual: DateTime<Utc>, op: &str, expected: &str) -> bool {
    let Some(expected) = parse_time(expected) else {
        return false;
    };
    match op {
        "=" => actual == expected,
        "!=" => actual != expected,
        "<" => actual < expected,
        "<=" => actual <= expected,
        ">" => actual > expected,
        ">=" => actual >= expected,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sdk_query_and_escapes() {
        let q = Query::parse(r"name = 'x y' and 'PARENT' in parents and trashed = false").unwrap();
        let text = format!("{q:?}");
        assert!(text.contains("\"x y\""), "{text}");
        assert!(text.contains("InParents(\"PARENT\")"), "{text}");
        let q = Query::parse(r"name contains 'quinn\'s paper\\essay'").unwrap();
        assert_eq!(
            q,
            Query::Compare {
                field: "name".into(),
                op: "contains",
                value: Literal::Str(r"quinn's paper\essay".into())
            }
        );
        assert!(Query::parse("not (trashed = true or name != 'a')").is_some());
    }

    #[test]
    fn name_equality_ignores_case_and_other_fields_do_not() {
        let mut file = super::super::store::DriveStore::new()
            .create(
                &serde_json::Map::new(),
                crate::google::store::Content::hashed(bytes::Bytes::new()),
                Some("text/plain"),
            )
            .unwrap();
        file.name = "Report.PDF".into();
        let hit = |file: &DriveFile, q: &str| Query::parse(q).unwrap().matches(file, "root");
        assert!(hit(&file, "name = 'report.pdf'"));
        assert!(hit(&file, "name = 'REPORT.pdf'"));
        assert!(!hit(&file, "name != 'report.pdf'"));
        assert!(hit(&file, "name != 'report.pd'"));
        assert!(!hit(&file, "name = 'report.pd'"));
        assert!(!hit(&file, "name = 'report.pdfx'"));
        assert!(!hit(&file, "mimeType = 'TEXT/PLAIN'"));
        file.name = "Ärger".into();
        assert!(hit(&file, "name = 'ärger'"));
        file.name = "\u{212A}elvin".into();
        assert!(hit(&file, "name = 'kelvin'"));
    }

    #[test]
    fn rejects_malformed_queries() {
        for bad in [
            "name = ",
            "name == 'a'",
            "'a' in",
            "(name = 'a'",
            "size > '3'",
            "name = 'open",
        ] {
            assert!(Query::parse(bad).is_none(), "{bad}");
        }
    }
}
