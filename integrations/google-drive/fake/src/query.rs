//! The subset of Drive's search query language (`files.list?q=`) the fake evaluates:
//! `trashed = true|false`, `'<id>' in parents`, `mimeType = | != '<type>'`,
//! `name = | != | contains '<name>'`, `modifiedTime` and `createdTime` compared (`=`,
//! `!=`, `<`, `<=`, `>`, `>=`) with an RFC 3339 string, joined by `and`, `or`, `not`
//! and parentheses. Strings are single-quoted with `\'` and `\\` escapes. Anything
//! else is an error, which the server answers with Google's 400 for `q`.

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Trashed(bool),
    InParents(String),
    MimeType { equal: bool, value: String },
    Name { op: Op, value: String },
    Time { field: TimeField, op: Op, ms: i64 },
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

/// A time field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeField {
    Modified,
    Created,
}

/// What a query is evaluated against.
pub(crate) struct Subject<'a> {
    pub trashed: bool,
    pub parent: Option<&'a str>,
    pub mime_type: &'a str,
    pub name: &'a str,
    pub modified_ms: i64,
    pub created_ms: i64,
}

impl Expr {
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        match self {
            Expr::And(a, b) => a.matches(s) && b.matches(s),
            Expr::Or(a, b) => a.matches(s) || b.matches(s),
            Expr::Not(a) => !a.matches(s),
            Expr::Trashed(t) => s.trashed == *t,
            Expr::InParents(id) => s.parent == Some(id.as_str()),
            Expr::MimeType { equal, value } => (s.mime_type == value) == *equal,
            Expr::Name { op, value } => match op {
                Op::Eq => s.name == value,
                Op::Ne => s.name != value,
                Op::Contains => s.name.contains(value.as_str()),
                _ => false,
            },
            Expr::Time { field, op, ms } => {
                let at = match field {
                    TimeField::Modified => s.modified_ms,
                    TimeField::Created => s.created_ms,
                };
                match op {
                    Op::Eq => at == *ms,
                    Op::Ne => at != *ms,
                    Op::Lt => at < *ms,
                    Op::Le => at <= *ms,
                    Op::Gt => at > *ms,
                    Op::Ge => at >= *ms,
                    Op::Contains => false,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Op(Op),
    Open,
    Close,
}

/// The deepest nesting of parentheses and `not` accepted.
const MAX_NESTING: usize = 32;

/// Parses `q`.
pub(crate) fn parse(q: &str) -> Result<Expr, String> {
    let tokens = tokenize(q)?;
    let mut parser = Parser { tokens, at: 0 };
    let expr = parser.or(0)?;
    if parser.at != parser.tokens.len() {
        return Err(format!("unexpected {:?}", parser.tokens[parser.at]));
    }
    Ok(expr)
}

fn tokenize(q: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err("unterminated string".into()),
                        },
                        Some('\'') => break,
                        Some(other) => value.push(other),
                        None => return Err("unterminated string".into()),
                    }
                }
                tokens.push(Token::Str(value));
            }
            '=' => {
                chars.next();
                tokens.push(Token::Op(Op::Eq));
            }
            '!' | '<' | '>' => {
                chars.next();
                let eq = chars.peek() == Some(&'=');
                if eq {
                    chars.next();
                }
                let op = match (c, eq) {
                    ('!', true) => Op::Ne,
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    _ => return Err("unknown operator".into()),
                };
                tokens.push(Token::Op(op));
            }
            c if c.is_ascii_alphanumeric() => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w == word)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn or(&mut self, depth: usize) -> Result<Expr, String> {
        let mut left = self.and(depth)?;
        while self.peek_word("or") {
            self.at += 1;
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, String> {
        let mut left = self.unary(depth)?;
        while self.peek_word("and") {
            self.at += 1;
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > MAX_NESTING {
            return Err("the query is nested too deeply".into());
        }
        if self.peek_word("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or(depth + 1)?;
            if self.next() != Some(Token::Close) {
                return Err("missing )".into());
            }
            return Ok(inner);
        }
        self.term()
    }

    fn term(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Str(value)) => {
                if self.next() == Some(Token::Word("in".into()))
                    && self.next() == Some(Token::Word("parents".into()))
                {
                    Ok(Expr::InParents(value))
                } else {
                    Err("expected `in parents`".into())
                }
            }
            Some(Token::Word(field)) => {
                let op = match self.next() {
                    Some(Token::Op(op)) => op,
                    Some(Token::Word(w)) if w == "contains" => Op::Contains,
                    other => return Err(format!("expected an operator, got {other:?}")),
                };
                let value = self.next();
                match (field.as_str(), op, value) {
                    ("trashed", Op::Eq, Some(Token::Word(v))) if v == "true" || v == "false" => {
                        Ok(Expr::Trashed(v == "true"))
                    }
                    ("trashed", Op::Ne, Some(Token::Word(v))) if v == "true" || v == "false" => {
                        Ok(Expr::Trashed(v != "true"))
                    }
                    ("mimeType", Op::Eq | Op::Ne, Some(Token::Str(value))) => Ok(Expr::MimeType {
                        equal: op == Op::Eq,
                        value,
                    }),
                    ("name", Op::Eq | Op::Ne | Op::Contains, Some(Token::Str(value))) => {
                        Ok(Expr::Name { op, value })
                    }
                    (f @ ("modifiedTime" | "createdTime"), op, Some(Token::Str(value)))
                        if op != Op::Contains =>
                    {
                        let ms = chrono::DateTime::parse_from_rfc3339(&value)
                            .map_err(|e| format!("invalid time {value}: {e}"))?
                            .timestamp_millis();
                        let field = if f == "modifiedTime" {
                            TimeField::Modified
                        } else {
                            TimeField::Created
                        };
                        Ok(Expr::Time { field, op, ms })
                    }
                    (field, _, value) => Err(format!("unsupported term {field} {value:?}")),
                }
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(trashed: bool, parent: &'a str, mime: &'a str) -> Subject<'a> {
        Subject {
            trashed,
            parent: Some(parent),
            mime_type: mime,
            name: "Plan.txt",
            modified_ms: 1_000,
            created_ms: 500,
        }
    }

    #[test]
    fn the_subset_parses_and_evaluates() {
        let q = parse("'p1' in parents and trashed = false and mimeType != 'application/vnd.google-apps.folder'").unwrap();
        assert!(q.matches(&subject(false, "p1", "text/plain")));
        assert!(!q.matches(&subject(true, "p1", "text/plain")));
        assert!(!q.matches(&subject(false, "p2", "text/plain")));
        let q = parse("not (trashed = true or name contains 'Plan') or modifiedTime > '1970-01-01T00:00:00.999Z'").unwrap();
        assert!(q.matches(&subject(false, "p", "x")));
        let q = parse(r"name = 'it\'s'").unwrap();
        assert_eq!(
            q,
            Expr::Name {
                op: Op::Eq,
                value: "it's".into()
            }
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "trashed",
            "trashed = maybe",
            "starred = true",
            "'x' in owners",
            "(trashed = false",
            "name = 'open",
            "modifiedTime > 'yesterday'",
            &"(".repeat(100),
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
