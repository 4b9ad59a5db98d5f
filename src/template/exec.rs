//! Executing a parsed template against a Go value, after Go's
//! `text/template/exec.go`: actions, `if`/`with`/`range`/`define`/`template`,
//! pipelines, field and method lookup, variables, and the step, depth and
//! output limits a repository's template cannot exceed.

use std::collections::BTreeMap;

use gotmpl::parse::{BranchNode, CommandNode, Expr, ListNode, Node, Number, PipeNode, Pos};

use super::funcs::{Param, func_sig, too_large};
use super::gofmt::{go_quote, sprint_v, write_v};
use super::parse::{branch_text, command_text, expr_text, list_text, node_pos};
use super::value::{FieldKind, Val, find_field, truth};
use super::{MAX_OUTPUT, MAX_STEPS, MAX_TEMPLATE_DEPTH, TemplateError};

pub(super) enum Flow {
    Normal,
    Break,
    Continue,
}

pub(super) type Res<T> = Result<T, TemplateError>;

pub(super) struct Exec<'a> {
    /// The parse name (Go's `ParseName`), used in locations.
    pub(super) name: &'a str,
    pub(super) src: &'a str,
    pub(super) defines: &'a BTreeMap<String, ListNode>,
    pub(super) vars: Vec<(String, Val)>,
    pub(super) out: String,
    pub(super) depth: usize,
    /// Steps taken so far, bounded by [`MAX_STEPS`].
    pub(super) steps: usize,
    /// The template being executed (differs inside `{{template}}`).
    pub(super) current: String,
}

impl Exec<'_> {
    pub(super) fn error(&self, pos: Pos, context: String, message: String) -> TemplateError {
        let offset = pos.offset.min(self.src.len());
        let before = self.src.get(..offset).unwrap_or(self.src);
        let line = 1 + before.matches('\n').count();
        let column = match before.rfind('\n') {
            Some(i) => offset - (i + 1),
            None => offset,
        };
        let context = if context.len() > 20 {
            let cut: String = context.chars().take(20).collect();
            format!("{cut}...")
        } else {
            context
        };
        TemplateError::Exec {
            name: self.name.to_string(),
            line,
            column,
            template: self.current.clone(),
            context,
            message,
        }
    }

    pub(super) fn expr_error(&self, e: &Expr, message: String) -> TemplateError {
        self.error(e.pos(), expr_text(e), message)
    }

    pub(super) fn walk(&mut self, dot: &Val, list: &ListNode) -> Res<Flow> {
        for node in &list.nodes {
            match self.walk_node(dot, node)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    /// Counts one step of work; past [`MAX_STEPS`], or once the output is
    /// past [`MAX_OUTPUT`], the execution stops with an error at `pos`.
    pub(super) fn step(&mut self, pos: Pos, context: impl FnOnce() -> String) -> Res<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.error(
                pos,
                context(),
                format!("the template takes more than {MAX_STEPS} steps; refusing to go on"),
            ));
        }
        if self.out.len() > MAX_OUTPUT {
            return Err(self.error(pos, context(), too_large("the output")));
        }
        Ok(())
    }

    pub(super) fn walk_node(&mut self, dot: &Val, node: &Node) -> Res<Flow> {
        let flow = self.walk_node_unbounded(dot, node)?;
        self.step(node_pos(node), || {
            list_text(&ListNode {
                pos: node_pos(node),
                nodes: vec![node.clone()],
            })
        })?;
        Ok(flow)
    }

    pub(super) fn walk_node_unbounded(&mut self, dot: &Val, node: &Node) -> Res<Flow> {
        match node {
            Node::Text(t) => self.out.push_str(&t.text),
            Node::Action(a) => {
                let v = self.eval_pipeline(dot, &a.pipe)?;
                if a.pipe.decl.is_empty() {
                    match v {
                        Val::Nil => self.out.push_str("<no value>"),
                        v => write_v(&mut self.out, &v),
                    }
                }
            }
            Node::If(b) => return self.walk_if_with(dot, b, false),
            Node::With(b) => return self.walk_if_with(dot, b, true),
            Node::Range(b) => return self.walk_range(dot, b),
            Node::Template(t) => {
                let defines = self.defines;
                // Go places a template node at its name.
                let name_at = self
                    .src
                    .get(t.pos.offset..)
                    .and_then(|s| s.find(['"', '`']));
                let pos = Pos::new(t.pos.offset + name_at.unwrap_or(0), t.pos.line);
                let context = || {
                    list_text(&ListNode {
                        pos: t.pos,
                        nodes: vec![node.clone()],
                    })
                };
                let Some(body) = defines.get(t.name.as_str()) else {
                    return Err(self.error(
                        pos,
                        context(),
                        format!("template {} not defined", go_quote(&t.name)),
                    ));
                };
                if self.depth >= MAX_TEMPLATE_DEPTH {
                    return Err(self.error(
                        pos,
                        context(),
                        format!("exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})"),
                    ));
                }
                let new_dot = match &t.pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Val::Nil,
                };
                let vars =
                    std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
                let current = std::mem::replace(&mut self.current, t.name.to_string());
                self.depth += 1;
                let result = self.walk(&new_dot, body);
                self.depth -= 1;
                self.vars = vars;
                self.current = current;
                result?;
            }
            Node::List(l) => return self.walk(dot, l),
            Node::Define(_) => {}
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    pub(super) fn walk_if_with(&mut self, dot: &Val, b: &BranchNode, with: bool) -> Res<Flow> {
        let mark = self.vars.len();
        let v = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if truth(&v) {
            self.walk(if with { &v } else { dot }, &b.body)?
        } else if let Some(e) = &b.else_body {
            self.walk(dot, e)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    pub(super) fn walk_range(&mut self, dot: &Val, b: &BranchNode) -> Res<Flow> {
        let mark = self.vars.len();
        let v = self.eval_pipeline(dot, &b.pipe)?;
        let inner = self.vars.len();
        let context = || branch_text("range", b);
        // Lazily: `range 9223372036854775807` must not allocate its items.
        let items: Box<dyn Iterator<Item = (Val, Val)>> = match &v {
            Val::List(l) => Box::new(
                l.items
                    .clone()
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (Val::Int(i as i64), item)),
            ),
            Val::Map(m) => Box::new(m.entries.clone().into_iter()),
            Val::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.error(
                        b.pipe.pos,
                        context(),
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                Box::new((0..*n).map(|i| (Val::Int(i), Val::Int(i))))
            }
            Val::Nil => Box::new(std::iter::empty()),
            other => {
                return Err(self.error(
                    b.pipe.pos,
                    context(),
                    format!("range can't iterate over {}", sprint_v(other)),
                ));
            }
        };
        let mut items = items.peekable();
        if items.peek().is_none() {
            let flow = match &b.else_body {
                Some(e) => self.walk(dot, e)?,
                None => Flow::Normal,
            };
            self.vars.truncate(mark);
            return Ok(flow);
        }
        let decl = &b.pipe.decl;
        for (index, elem) in items {
            if b.pipe.is_assign {
                if decl.len() > 1 {
                    self.set_var(&decl[0], index, b.pipe.pos)?;
                    self.set_var(&decl[1], elem.clone(), b.pipe.pos)?;
                } else if let Some(d) = decl.first() {
                    self.set_var(d, elem.clone(), b.pipe.pos)?;
                }
            } else {
                if !decl.is_empty() {
                    self.vars[inner - 1].1 = elem.clone();
                }
                if decl.len() > 1 {
                    self.vars[inner - 2].1 = index;
                }
            }
            self.step(b.pipe.pos, context)?;
            let flow = self.walk(&elem, &b.body)?;
            self.vars.truncate(inner);
            if let Flow::Break = flow {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    pub(super) fn set_var(&mut self, name: &str, value: Val, pos: Pos) -> Res<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(self.error(pos, name.to_string(), format!("undefined variable: {name}"))),
        }
    }

    pub(super) fn var_value(&self, name: &str, e: &Expr) -> Res<Val> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.expr_error(e, format!("undefined variable: {name}"))),
        }
    }

    pub(super) fn eval_pipeline(&mut self, dot: &Val, pipe: &PipeNode) -> Res<Val> {
        let mut value: Option<Val> = None;
        for cmd in &pipe.commands {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Val::Nil);
        for d in &pipe.decl {
            if pipe.is_assign {
                self.set_var(d, value.clone(), pipe.pos)?;
            } else {
                self.vars.push((d.to_string(), value.clone()));
            }
        }
        Ok(value)
    }

    pub(super) fn not_a_function(&self, cmd: &CommandNode, fin: &Option<Val>) -> Res<()> {
        if cmd.args.len() > 1 || fin.is_some() {
            let first = &cmd.args[0];
            return Err(self.expr_error(
                first,
                format!("can't give argument to non-function {}", expr_text(first)),
            ));
        }
        Ok(())
    }

    pub(super) fn eval_command(
        &mut self,
        dot: &Val,
        cmd: &CommandNode,
        fin: Option<Val>,
    ) -> Res<Val> {
        let Some(first) = cmd.args.first() else {
            return Err(self.error(cmd.pos, String::new(), "empty command".to_string()));
        };
        let extra = cmd.args.len() - 1 + usize::from(fin.is_some());
        match first {
            Expr::Field(_, fields) => self.eval_field_chain(first, dot.clone(), fields, extra),
            Expr::Chain(_, inner, fields) => {
                let receiver = self.eval_chain_receiver(dot, inner)?;
                self.eval_field_chain(first, receiver, fields, extra)
            }
            Expr::Identifier(pos, name) => {
                self.eval_function(dot, *pos, name, Some(cmd), &cmd.args[1..], fin)
            }
            Expr::Pipe(_, pipe) => {
                self.not_a_function(cmd, &fin)?;
                self.eval_pipeline(dot, pipe)
            }
            Expr::Variable(_, name, fields) => {
                let value = self.var_value(name, first)?;
                if fields.is_empty() {
                    self.not_a_function(cmd, &fin)?;
                    Ok(value)
                } else {
                    self.eval_field_chain(first, value, fields, extra)
                }
            }
            Expr::Bool(_, b) => {
                self.not_a_function(cmd, &fin)?;
                Ok(Val::Bool(*b))
            }
            Expr::Dot(_) => {
                self.not_a_function(cmd, &fin)?;
                Ok(dot.clone())
            }
            Expr::Nil(_) => {
                self.not_a_function(cmd, &fin)?;
                Err(self.expr_error(first, "nil is not a command".to_string()))
            }
            Expr::Number(_, n) => {
                self.not_a_function(cmd, &fin)?;
                self.ideal_constant(first, n)
            }
            Expr::String(_, s) => {
                self.not_a_function(cmd, &fin)?;
                Ok(Val::str(s))
            }
        }
    }

    pub(super) fn eval_chain_receiver(&mut self, dot: &Val, inner: &Expr) -> Res<Val> {
        match inner {
            Expr::Pipe(_, p) => self.eval_pipeline(dot, p),
            Expr::Identifier(pos, name) => self.eval_function(dot, *pos, name, None, &[], None),
            other => self.eval_arg(dot, Param::Any, other),
        }
    }

    pub(super) fn ideal_constant(&self, e: &Expr, n: &Number) -> Res<Val> {
        match n {
            Number::Int(i) => Ok(Val::Int(*i)),
            Number::Float(f) => Ok(Val::Float(*f)),
            Number::Uint(u) => Err(self.expr_error(e, format!("{u} overflows int"))),
        }
    }

    /// `.A.B.C` on `receiver`; `extra` counts the arguments given to the
    /// last element (which only methods may take).
    pub(super) fn eval_field_chain(
        &self,
        node: &Expr,
        receiver: Val,
        fields: &[gotmpl::parse::SmolStr],
        extra: usize,
    ) -> Res<Val> {
        let mut value = receiver;
        for (i, field) in fields.iter().enumerate() {
            let args = if i + 1 == fields.len() { extra } else { 0 };
            value = self.eval_field(node, field, value, args)?;
        }
        Ok(value)
    }

    pub(super) fn eval_field(
        &self,
        node: &Expr,
        name: &str,
        receiver: Val,
        extra: usize,
    ) -> Res<Val> {
        let fail = |message: String| Err(self.expr_error(node, message));
        if let Val::Nil = receiver {
            return Ok(Val::Nil);
        }
        let own_field = match &receiver {
            Val::Struct(s) => find_field(s, name).is_some(),
            _ => false,
        };
        if name == "String"
            && !own_field
            && let Some(s) = receiver.stringer()
        {
            if extra > 0 {
                return fail(format!(
                    "wrong number of args for String: want 0 got {extra}"
                ));
            }
            return Ok(Val::str(s));
        }
        match &receiver {
            Val::Struct(s) => match find_field(s, name) {
                Some(f) => match f.kind {
                    FieldKind::Method if extra > 0 => fail(format!(
                        "wrong number of args for {name}: want 0 got {extra}"
                    )),
                    FieldKind::Method => Ok(f.val.clone()),
                    _ if extra > 0 => fail(format!(
                        "{name} has arguments but cannot be invoked as function"
                    )),
                    _ => Ok(f.val.clone()),
                },
                None => fail(format!("can't evaluate field {name} in type {}", s.ty)),
            },
            Val::Map(m) if m.key_ty == "string" => {
                if extra > 0 {
                    return fail(format!("{name} is not a method but has arguments"));
                }
                Ok(m.entries
                    .iter()
                    .find(|(k, _)| matches!(k, Val::Str(k) if &**k == name))
                    .map_or(Val::Nil, |(_, v)| v.clone()))
            }
            other => fail(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    pub(super) fn eval_function(
        &mut self,
        dot: &Val,
        pos: Pos,
        name: &str,
        cmd: Option<&CommandNode>,
        args: &[Expr],
        fin: Option<Val>,
    ) -> Res<Val> {
        let context = || cmd.map_or_else(|| name.to_string(), command_text);
        let Some(sig) = func_sig(name) else {
            return Err(self.error(
                pos,
                name.to_string(),
                format!("{} is not a defined function", go_quote(name)),
            ));
        };
        let given = args.len() + usize::from(fin.is_some());
        if sig.variadic.is_some() {
            if given < sig.fixed.len() {
                return Err(self.error(
                    pos,
                    name.to_string(),
                    format!(
                        "wrong number of args for {name}: want at least {} got {}",
                        sig.fixed.len(),
                        args.len()
                    ),
                ));
            }
        } else if given != sig.fixed.len() {
            return Err(self.error(
                pos,
                name.to_string(),
                format!(
                    "wrong number of args for {name}: want {} got {given}",
                    sig.fixed.len()
                ),
            ));
        }
        if name == "and" || name == "or" {
            let stop_on = name == "or";
            let mut value = Val::Nil;
            for arg in args {
                value = self.eval_arg(dot, Param::Any, arg)?;
                if truth(&value) == stop_on {
                    return Ok(value);
                }
            }
            if let Some(f) = fin {
                value = f;
            }
            return Ok(value);
        }
        let mut argv = Vec::with_capacity(given);
        for (i, arg) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, sig.param(i), arg)?);
        }
        if let Some(f) = fin {
            let param = sig.param(given - 1);
            let f = self
                .check_type(f, param)
                .map_err(|m| self.error(pos, context(), m))?;
            argv.push(f);
        }
        let result = (sig.imp)(&argv).and_then(|v| match &v {
            Val::Str(s) if s.len() > MAX_OUTPUT => Err(too_large("the result")),
            _ => Ok(v),
        });
        result.map_err(|m| {
            self.error(
                cmd.map_or(pos, |c| c.pos),
                context(),
                format!("error calling {name}: {m}"),
            )
        })
    }

    /// Go's `validateType`.
    pub(super) fn check_type(&self, v: Val, param: Param) -> Result<Val, String> {
        match (param, &v) {
            (Param::Any, _) => Ok(v),
            (_, Val::Nil) => Err(format!("invalid value; expected {}", param.name())),
            (Param::Str, Val::Str(_)) | (Param::Int, Val::Int(_)) | (Param::Bool, Val::Bool(_)) => {
                Ok(v)
            }
            _ => Err(format!(
                "wrong type for value; expected {}; got {}",
                param.name(),
                v.type_name()
            )),
        }
    }

    /// Go's `evalArg`: an argument evaluated for a parameter type.
    pub(super) fn eval_arg(&mut self, dot: &Val, param: Param, e: &Expr) -> Res<Val> {
        let value = match e {
            Expr::Dot(_) => dot.clone(),
            Expr::Nil(_) => {
                return match param {
                    Param::Any => Ok(Val::Nil),
                    _ => Err(self.expr_error(e, format!("cannot assign nil to {}", param.name()))),
                };
            }
            Expr::Field(_, fields) => self.eval_field_chain(e, dot.clone(), fields, 0)?,
            Expr::Variable(_, name, fields) => {
                let v = self.var_value(name, e)?;
                self.eval_field_chain(e, v, fields, 0)?
            }
            Expr::Pipe(_, p) => self.eval_pipeline(dot, p)?,
            Expr::Identifier(pos, name) => self.eval_function(dot, *pos, name, None, &[], None)?,
            Expr::Chain(_, inner, fields) => {
                let receiver = self.eval_chain_receiver(dot, inner)?;
                self.eval_field_chain(e, receiver, fields, 0)?
            }
            Expr::Bool(_, b) => {
                return match param {
                    Param::Any | Param::Bool => Ok(Val::Bool(*b)),
                    _ => Err(self.literal_mismatch(e, param)),
                };
            }
            Expr::String(_, s) => {
                return match param {
                    Param::Any | Param::Str => Ok(Val::str(s)),
                    _ => Err(self.literal_mismatch(e, param)),
                };
            }
            Expr::Number(_, n) => {
                return match (param, n) {
                    (Param::Any, n) => self.ideal_constant(e, n),
                    (Param::Int, Number::Int(i)) => Ok(Val::Int(*i)),
                    (Param::Int, Number::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                        Ok(Val::Int(*f as i64))
                    }
                    _ => Err(self.literal_mismatch(e, param)),
                };
            }
        };
        self.check_type(value, param)
            .map_err(|m| self.expr_error(e, m))
    }

    pub(super) fn literal_mismatch(&self, e: &Expr, param: Param) -> TemplateError {
        let wanted = match param {
            Param::Int => "integer",
            other => other.name(),
        };
        self.expr_error(e, format!("expected {wanted}; found {}", expr_text(e)))
    }
}
