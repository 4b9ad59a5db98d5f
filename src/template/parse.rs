//! Parsing a template with gotmpl, plus the checks Go's parser makes that
//! gotmpl's does not: the block structure (`{{end}}`s), that functions exist,
//! variables are declared and later pipeline stages are executable. Also Go's
//! `Node.String()` texts, which Go's error messages quote.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use gotmpl::parse::{BranchNode, CommandNode, Expr, ListNode, Node, Number, Parser, PipeNode, Pos};

use super::TemplateError;
use super::funcs::func_sig;
use super::gofmt::{go_float, go_quote};

pub(super) struct Parsed {
    pub(super) root: ListNode,
    pub(super) defines: BTreeMap<String, ListNode>,
}

pub(super) fn parse_error(name: &str, line: usize, message: impl Into<String>) -> TemplateError {
    TemplateError::Parse {
        name: name.to_string(),
        line,
        message: message.into(),
    }
}

pub(super) fn parse_template(name: &str, src: &str) -> Result<Parsed, TemplateError> {
    let from_gotmpl = |e: gotmpl::TemplateError| match e {
        gotmpl::TemplateError::Parse { line, message, .. }
        | gotmpl::TemplateError::Lex { line, message, .. } => parse_error(name, line, message),
        other => parse_error(name, 1, other.to_string()),
    };
    // Lex first (so the structure scan sees well-formed actions), then
    // check the block structure, then parse.
    let parser = Parser::with_name(Some(name), src, "{{", "}}").map_err(from_gotmpl)?;
    check_structure(name, src)?;
    let (mut root, defs) = parser.parse().map_err(from_gotmpl)?;
    let mut defines: BTreeMap<String, ListNode> = BTreeMap::new();
    for def in defs {
        let key = def.name.to_string();
        if let Some(previous) = defines.get(&key) {
            if def.body.is_empty_tree() {
                continue;
            }
            if !previous.is_empty_tree() {
                return Err(parse_error(
                    name,
                    def.pos.line,
                    format!(
                        "template: multiple definition of template {}",
                        go_quote(&key)
                    ),
                ));
            }
        }
        defines.insert(key, def.body);
    }
    // As in Go, the template is also defined under its own name; a
    // `{{define}}` of that name replaces an empty body.
    match defines.get(name) {
        Some(body) if root.is_empty_tree() => root = body.clone(),
        Some(body) if !body.is_empty_tree() => {
            return Err(parse_error(
                name,
                1,
                format!(
                    "template: multiple definition of template {}",
                    go_quote(name)
                ),
            ));
        }
        _ => {
            defines.insert(name.to_string(), root.clone());
        }
    }
    let checker = Checker { name };
    checker.list(&root, &mut vec!["$".to_string()])?;
    for body in defines.values() {
        checker.list(body, &mut vec!["$".to_string()])?;
    }
    Ok(Parsed { root, defines })
}

/// The block structure Go's parser enforces (gotmpl accepts a missing
/// `{{end}}`, and stops silently at a stray one): scans the actions'
/// leading keywords.
pub(super) fn check_structure(name: &str, src: &str) -> Result<(), TemplateError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Open {
        If,
        Range,
        With,
        Define,
        Block,
    }
    let bytes = src.as_bytes();
    let is_space = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t' | b'\r' | b'\n'));
    let word_at = |p: usize| {
        let len = bytes[p.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        (&src[p..p + len], p + len)
    };
    let mut stack: Vec<(Open, bool)> = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while let Some(offset) = src[i..].find("{{") {
        let start = i + offset;
        line += src[i..start].matches('\n').count();
        let mut p = start + 2;
        if bytes.get(p) == Some(&b'-') && is_space(bytes.get(p + 1)) {
            p += 1;
        }
        while is_space(bytes.get(p)) {
            p += 1;
        }
        let (word, after) = word_at(p);
        let mut k = if src[p..].starts_with("/*") {
            match src[p + 2..].find("*/") {
                Some(e) => p + 2 + e + 2,
                None => return Ok(()),
            }
        } else {
            after
        };
        // Find the closing delimiter, skipping quoted text.
        loop {
            match bytes.get(k) {
                None => return Ok(()),
                Some(&q @ (b'"' | b'\'')) => {
                    k += 1;
                    while let Some(&c) = bytes.get(k) {
                        k += if c == b'\\' { 2 } else { 1 };
                        if c == q {
                            break;
                        }
                    }
                }
                Some(b'`') => {
                    k += 1;
                    while let Some(&c) = bytes.get(k) {
                        k += 1;
                        if c == b'`' {
                            break;
                        }
                    }
                }
                Some(b'}') if bytes.get(k + 1) == Some(&b'}') => {
                    k += 2;
                    break;
                }
                Some(_) => k += 1,
            }
        }
        let k = k.min(src.len());
        let keyword_line = line;
        line += src[start..k].matches('\n').count();
        i = k;
        if src[p..].starts_with("/*") {
            continue;
        }
        let fail = |message: &str| Err(parse_error(name, keyword_line, message));
        match word {
            "if" => stack.push((Open::If, false)),
            "range" => stack.push((Open::Range, false)),
            "with" => stack.push((Open::With, false)),
            "block" => stack.push((Open::Block, false)),
            "define" => {
                if !stack.is_empty() {
                    return fail("unexpected <define> in command");
                }
                stack.push((Open::Define, false));
            }
            "end" => match stack.pop() {
                Some(_) => {}
                None => return fail("unexpected {{end}}"),
            },
            "else" => {
                let mut q = after;
                while is_space(bytes.get(q)) {
                    q += 1;
                }
                let chained = word_at(q).0;
                match stack.last_mut() {
                    None => return fail("unexpected {{else}}"),
                    Some((Open::Define, _)) => return fail("unexpected {{else}} in define clause"),
                    Some((Open::Block, _)) => return fail("unexpected {{else}} in block clause"),
                    Some((_, true)) => return fail("expected end; found {{else}}"),
                    Some((kind, else_seen)) => {
                        let chain = (*kind == Open::If && chained == "if")
                            || (*kind == Open::With && chained == "with");
                        if !chain {
                            if chained == "if" || chained == "with" {
                                return fail(&format!("unexpected <{chained}> in input"));
                            }
                            *else_seen = true;
                        }
                    }
                }
            }
            "break" | "continue"
                if !stack
                    .iter()
                    .any(|&(b, else_seen)| b == Open::Range && !else_seen) =>
            {
                return fail(&format!("{{{{{word}}}}} outside {{{{range}}}}"));
            }
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(parse_error(
            name,
            1 + src.matches('\n').count(),
            "unexpected EOF",
        ));
    }
    Ok(())
}

/// Go's parse-time checks on the tree: functions exist, variables are
/// declared, later pipeline stages are executable.
pub(super) struct Checker<'a> {
    pub(super) name: &'a str,
}

impl Checker<'_> {
    pub(super) fn list(
        &self,
        list: &ListNode,
        vars: &mut Vec<String>,
    ) -> Result<(), TemplateError> {
        for node in &list.nodes {
            match node {
                Node::Action(a) => self.pipe(&a.pipe, vars)?,
                Node::If(b) | Node::Range(b) | Node::With(b) => {
                    let mark = vars.len();
                    self.pipe(&b.pipe, vars)?;
                    self.list(&b.body, vars)?;
                    if let Some(e) = &b.else_body {
                        self.list(e, vars)?;
                    }
                    vars.truncate(mark);
                }
                Node::Template(t) => {
                    if let Some(p) = &t.pipe {
                        self.pipe(p, vars)?;
                    }
                }
                Node::List(l) => self.list(l, vars)?,
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn pipe(
        &self,
        pipe: &PipeNode,
        vars: &mut Vec<String>,
    ) -> Result<(), TemplateError> {
        vars.extend(pipe.decl.iter().map(|d| d.to_string()));
        for (i, cmd) in pipe.commands.iter().enumerate() {
            if i > 0
                && matches!(
                    cmd.args.first(),
                    Some(
                        Expr::Bool(..)
                            | Expr::Dot(_)
                            | Expr::Nil(_)
                            | Expr::Number(..)
                            | Expr::String(..)
                    )
                )
            {
                return Err(parse_error(
                    self.name,
                    cmd.pos.line,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
            for arg in &cmd.args {
                self.expr(arg, vars)?;
            }
        }
        Ok(())
    }

    pub(super) fn expr(&self, expr: &Expr, vars: &mut Vec<String>) -> Result<(), TemplateError> {
        match expr {
            Expr::Identifier(pos, name) if func_sig(name).is_none() => Err(parse_error(
                self.name,
                pos.line,
                format!("function {} not defined", go_quote(name)),
            )),
            Expr::Variable(pos, name, _) if !vars.iter().any(|v| v == name.as_str()) => {
                Err(parse_error(
                    self.name,
                    pos.line,
                    format!("undefined variable {}", go_quote(name)),
                ))
            }
            Expr::Pipe(_, p) => self.pipe(p, vars),
            Expr::Chain(_, inner, _) => self.expr(inner, vars),
            _ => Ok(()),
        }
    }
}

// Node texts for error contexts, as Go's `Node.String()` writes them.

pub(super) fn node_pos(node: &Node) -> Pos {
    match node {
        Node::List(l) => l.pos,
        Node::Text(t) => t.pos,
        Node::Action(a) => a.pos,
        Node::If(b) | Node::Range(b) | Node::With(b) => b.pos,
        Node::Template(t) => t.pos,
        Node::Define(d) => d.pos,
        Node::Break(p) | Node::Continue(p) => *p,
    }
}

pub(super) fn number_text(n: &Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Uint(u) => u.to_string(),
        Number::Float(f) => go_float(*f),
    }
}

pub(super) fn fields_text(fields: &[gotmpl::parse::SmolStr]) -> String {
    fields.iter().map(|f| format!(".{f}")).collect()
}

pub(super) fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Dot(_) => ".".to_string(),
        Expr::Field(_, f) => fields_text(f),
        Expr::Variable(_, name, f) => format!("{name}{}", fields_text(f)),
        Expr::Identifier(_, name) => name.to_string(),
        Expr::String(_, s) => go_quote(s),
        Expr::Number(_, n) => number_text(n),
        Expr::Bool(_, b) => b.to_string(),
        Expr::Nil(_) => "nil".to_string(),
        Expr::Pipe(_, p) => format!("({})", pipe_text(p)),
        Expr::Chain(_, inner, f) => format!("{}{}", expr_text(inner), fields_text(f)),
    }
}

pub(super) fn command_text(c: &CommandNode) -> String {
    c.args.iter().map(expr_text).collect::<Vec<_>>().join(" ")
}

pub(super) fn pipe_text(p: &PipeNode) -> String {
    let mut out = String::new();
    if !p.decl.is_empty() {
        out.push_str(&p.decl.join(", "));
        out.push_str(if p.is_assign { " = " } else { " := " });
    }
    out.push_str(
        &p.commands
            .iter()
            .map(command_text)
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out
}

pub(super) fn list_text(l: &ListNode) -> String {
    let mut out = String::new();
    for node in &l.nodes {
        match node {
            Node::Text(t) => out.push_str(&t.text),
            Node::Action(a) => {
                let _ = write!(out, "{{{{{}}}}}", pipe_text(&a.pipe));
            }
            Node::If(b) => out.push_str(&branch_text("if", b)),
            Node::Range(b) => out.push_str(&branch_text("range", b)),
            Node::With(b) => out.push_str(&branch_text("with", b)),
            Node::Template(t) => {
                let _ = write!(out, "{{{{template {}", go_quote(&t.name));
                if let Some(p) = &t.pipe {
                    let _ = write!(out, " {}", pipe_text(p));
                }
                out.push_str("}}");
            }
            Node::Break(_) => out.push_str("{{break}}"),
            Node::Continue(_) => out.push_str("{{continue}}"),
            Node::List(l) => out.push_str(&list_text(l)),
            Node::Define(_) => {}
        }
    }
    out
}

pub(super) fn branch_text(keyword: &str, b: &BranchNode) -> String {
    let mut out = format!(
        "{{{{{keyword} {}}}}}{}",
        pipe_text(&b.pipe),
        list_text(&b.body)
    );
    if let Some(e) = &b.else_body {
        let _ = write!(out, "{{{{else}}}}{}", list_text(e));
    }
    out.push_str("{{end}}");
    out
}
