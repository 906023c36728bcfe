//! Lexing of scenario lines: tokens, quoted strings, `$` references and
//! matcher operators (conformance/FORMAT.md, "Lexical structure").

use std::fmt;

/// One piece of a value: literal text, a `$name` reference, or a repeated group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Lit(String),
    Var(String),
    Rep(Vec<Seg>, usize),
}

/// A value: the concatenation of its segments, resolved when the step runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expr(pub Vec<Seg>);

impl Expr {
    /// The literal text, if the value contains no `$` reference.
    pub fn literal(&self) -> Option<String> {
        fn lit(segs: &[Seg], out: &mut String) -> bool {
            segs.iter().all(|s| match s {
                Seg::Lit(t) => {
                    out.push_str(t);
                    true
                }
                Seg::Var(_) => false,
                Seg::Rep(inner, n) => {
                    let mut one = String::new();
                    let ok = lit(inner, &mut one);
                    out.push_str(&one.repeat(*n));
                    ok
                }
            })
        }
        let mut out = String::new();
        lit(&self.0, &mut out).then_some(out)
    }

    /// The variable name if the value is exactly one `$name` reference.
    pub fn single_var(&self) -> Option<&str> {
        match self.0.as_slice() {
            [Seg::Var(name)] => Some(name),
            _ => None,
        }
    }

    /// Resolves references with `lookup`.
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        fn go(segs: &[Seg], lookup: &dyn Fn(&str) -> Option<String>, out: &mut String) -> Result<(), String> {
            for s in segs {
                match s {
                    Seg::Lit(t) => out.push_str(t),
                    Seg::Var(name) => out.push_str(&lookup(name).ok_or_else(|| format!("${name} is not bound"))?),
                    Seg::Rep(inner, n) => {
                        let mut one = String::new();
                        go(inner, lookup, &mut one)?;
                        out.push_str(&one.repeat(*n));
                    }
                }
            }
            Ok(())
        }
        let mut out = String::new();
        go(&self.0, lookup, &mut out)?;
        Ok(out)
    }
}

/// How a matcher compares an observed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    Ne,
    /// `^=`: starts with.
    Prefix,
    /// `=>`: bind the observed value to a new name.
    Bind,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Prefix => "^=",
            Op::Bind => "=>",
        })
    }
}

/// One argument of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// `key OP value`, e.g. `data=>$url1`.
    Keyed { key: String, op: Op, value: Expr },
    /// A value, possibly led by an operator (a positional matcher, e.g. `=>$r1`).
    Pos { op: Option<Op>, value: Expr },
}

/// A raw token piece before classification.
#[derive(Debug)]
enum Piece {
    Bare(String),
    Quoted(Vec<Seg>, usize),
}

const OPS: [(&str, Op); 4] = [("=>", Op::Bind), ("!=", Op::Ne), ("^=", Op::Prefix), ("=", Op::Eq)];

/// Splits one line into arguments. Returns an empty list for blank and comment lines.
pub fn tokenize(line: &str) -> Result<Vec<Arg>, String> {
    let mut tokens: Vec<Vec<Piece>> = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => break,
            _ => {}
        }
        let mut pieces = Vec::new();
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == '\t' {
                break;
            }
            if c == '"' {
                chars.next();
                let segs = quoted(&mut chars)?;
                let mut repeat = 1;
                if chars.peek() == Some(&'*') {
                    let mut look = chars.clone();
                    look.next();
                    if look.peek().is_some_and(|d| d.is_ascii_digit()) {
                        chars.next();
                        let mut digits = String::new();
                        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                            digits.push(*d);
                            chars.next();
                        }
                        repeat = digits.parse().map_err(|_| format!("bad repeat count {digits}"))?;
                    }
                }
                pieces.push(Piece::Quoted(segs, repeat));
            } else {
                let mut bare = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ' ' || c == '\t' || c == '"' {
                        break;
                    }
                    bare.push(c);
                    chars.next();
                }
                pieces.push(Piece::Bare(bare));
            }
        }
        tokens.push(pieces);
    }
    tokens.into_iter().map(classify).collect()
}

fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let mut lit = String::new();
    loop {
        let c = chars.next().ok_or("unterminated quoted string")?;
        match c {
            '"' => break,
            '\\' => {
                let e = chars.next().ok_or("dangling backslash")?;
                lit.push(match e {
                    '\\' => '\\',
                    '"' => '"',
                    '$' => '$',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    '0' => '\0',
                    'u' => {
                        if chars.next() != Some('{') {
                            return Err("\\u must be followed by {hex}".into());
                        }
                        let mut hex = String::new();
                        loop {
                            match chars.next() {
                                Some('}') => break,
                                Some(h) if h.is_ascii_hexdigit() && hex.len() < 6 => hex.push(h),
                                _ => return Err("bad \\u{...} escape".into()),
                            }
                        }
                        u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("\\u{{{hex}}} is not a Unicode scalar value"))?
                    }
                    other => return Err(format!("unknown escape \\{other}")),
                });
            }
            '$' => {
                if !lit.is_empty() {
                    segs.push(Seg::Lit(std::mem::take(&mut lit)));
                }
                segs.push(Seg::Var(var_name(chars)?));
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    Ok(segs)
}

/// Reads the name after a `$`: `name` or `{name}`.
fn var_name(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let braced = chars.peek() == Some(&'{');
    if braced {
        chars.next();
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        let ok =
            if name.is_empty() { c.is_ascii_alphabetic() || c == '_' } else { c.is_ascii_alphanumeric() || c == '_' };
        if !ok {
            break;
        }
        name.push(c);
        chars.next();
    }
    if name.is_empty() {
        return Err("$ must be followed by a name (write \\$ in quotes for a literal $)".into());
    }
    if braced && chars.next() != Some('}') {
        return Err(format!("unterminated ${{{name}"));
    }
    Ok(name)
}

/// Bare text to segments: `$name` and `${name}` are references.
fn bare_segs(bare: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let mut lit = String::new();
    let mut chars = bare.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            segs.push(Seg::Var(var_name(&mut chars)?));
        } else {
            lit.push(c);
        }
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    Ok(segs)
}

fn expr(pieces: impl IntoIterator<Item = Piece>) -> Result<Expr, String> {
    let pieces: Vec<Piece> = pieces.into_iter().collect();
    let mut segs = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        // A lone `+` between two quoted strings only joins them.
        let between_quotes =
            |j: Option<usize>| j.and_then(|j| pieces.get(j)).is_some_and(|p| matches!(p, Piece::Quoted(..)));
        if matches!(piece, Piece::Bare(b) if b == "+")
            && between_quotes(i.checked_sub(1))
            && between_quotes(Some(i + 1))
        {
            continue;
        }
        let piece = match piece {
            Piece::Bare(b) => Piece::Bare(b.clone()),
            Piece::Quoted(q, n) => Piece::Quoted(q.clone(), *n),
        };
        match piece {
            Piece::Bare(b) => segs.extend(bare_segs(&b)?),
            Piece::Quoted(q, 1) => segs.extend(q),
            Piece::Quoted(q, n) => segs.push(Seg::Rep(q, n)),
        }
    }
    Ok(Expr(segs))
}

fn classify(pieces: Vec<Piece>) -> Result<Arg, String> {
    let mut pieces = pieces.into_iter();
    let first = pieces.next().ok_or("empty token")?;
    let Piece::Bare(bare) = first else {
        let mut all = vec![first];
        all.extend(pieces);
        return Ok(Arg::Pos { op: None, value: expr(all)? });
    };
    // A key: [a-z][a-z0-9_-]* directly followed by an operator.
    let key_len = bare
        .char_indices()
        .take_while(|&(i, c)| {
            if i == 0 {
                c.is_ascii_lowercase()
            } else {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
            }
        })
        .count();
    let (key, rest) = bare.split_at(key_len);
    for (text, op) in OPS {
        if let Some(after) = rest.strip_prefix(text) {
            let value = expr(std::iter::once(Piece::Bare(after.to_string())).chain(pieces))?;
            if op == Op::Bind && value.single_var().is_none() {
                return Err(format!("`{text}` must be followed by $name (quote a value that starts with >)"));
            }
            return Ok(if key.is_empty() {
                Arg::Pos { op: Some(op), value }
            } else {
                Arg::Keyed { key: key.to_string(), op, value }
            });
        }
    }
    Ok(Arg::Pos { op: None, value: expr(std::iter::once(Piece::Bare(bare)).chain(pieces))? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Expr {
        Expr(vec![Seg::Lit(s.into())])
    }

    #[test]
    fn tokens() {
        let args = tokenize(r#"expect event s1 WS_TEXT id=$k1 data="a b\n" # comment"#).unwrap();
        assert_eq!(args.len(), 6);
        assert_eq!(args[0], Arg::Pos { op: None, value: lit("expect") });
        assert_eq!(args[4], Arg::Keyed { key: "id".into(), op: Op::Eq, value: Expr(vec![Seg::Var("k1".into())]) });
        assert_eq!(args[5], Arg::Keyed { key: "data".into(), op: Op::Eq, value: lit("a b\n") });
        let args = tokenize(r#"x data=>$url1 =>$r h="X: "$a"b"*3 "\u{20ac}\$" q=a=b WS_OK"#).unwrap();
        assert_eq!(
            args[1],
            Arg::Keyed { key: "data".into(), op: Op::Bind, value: Expr(vec![Seg::Var("url1".into())]) }
        );
        assert_eq!(args[2], Arg::Pos { op: Some(Op::Bind), value: Expr(vec![Seg::Var("r".into())]) });
        let Arg::Keyed { value, .. } = &args[3] else { panic!() };
        let v = value.eval(&|n| (n == "a").then(|| "A".to_string())).unwrap();
        assert_eq!(v, "X: Abbb");
        assert_eq!(args[4], Arg::Pos { op: None, value: lit("€$") });
        assert_eq!(args[5], Arg::Keyed { key: "q".into(), op: Op::Eq, value: lit("a=b") });
        assert_eq!(args[6], Arg::Pos { op: None, value: lit("WS_OK") });
        assert!(tokenize("# only a comment").unwrap().is_empty());
        assert!(tokenize("   ").unwrap().is_empty());
        assert!(tokenize(r#"a "unterminated"#).is_err());
        assert!(tokenize(r#"a "\q""#).is_err());
        assert!(tokenize("a data=>url").is_err());
        assert!(tokenize("a $").is_err());
        let args = tokenize(r#"h="X: "+"a"*3 b=a+b c="a"+b"#).unwrap();
        let values: Vec<String> = args
            .iter()
            .map(|a| match a {
                Arg::Keyed { value, .. } => value.literal().unwrap(),
                Arg::Pos { value, .. } => value.literal().unwrap(),
            })
            .collect();
        assert_eq!(values, ["X: aaa", "a+b", "a+b"]);
    }
}
