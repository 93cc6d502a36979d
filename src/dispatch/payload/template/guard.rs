//! What a request template may contain: a walk over the parsed template that refuses
//! every construct whose cost could grow without bound.
//!
//! Fuel bounds how many instructions a render runs, and the output is capped, but neither
//! bounds the size of a value built in memory: `{% set s = s ~ s %}` forty times, nested
//! `{% filter tojson %}` blocks or `"x" * 99999999` would each allocate gigabytes within a
//! handful of instructions. So there is no assignment (`set`, `with`), no filter block,
//! no macro, include or recursive loop, no `*` or `**`, no call but `range`, and only the
//! filters and tests listed here, each of whose results is at most a few times its input
//! (`tojson`, `join` and `urlencode` are also capped at run time, `template::VALUE_MAX`).
//! Every value is then at most the sum of the event's fields the template names, and a
//! render's memory is bounded by the template's size times the largest field.

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};

/// Filters a template may use.
pub const FILTERS: [&str; 25] = [
    "abs",
    "d",
    "default",
    "dictsort",
    "first",
    "float",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "reject",
    "rejectattr",
    "reverse",
    "round",
    "select",
    "selectattr",
    "short_digest",
    "sort",
    "string",
    "tojson",
    "trim",
    "upper",
];
/// Besides [`FILTERS`]: `urlencode`, kept apart so the list stays alphabetical above.
pub const URLENCODE: &str = "urlencode";

/// Tests a template may use.
pub const TESTS: [&str; 17] = [
    "defined",
    "endingwith",
    "eq",
    "even",
    "false",
    "in",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sequence",
    "startingwith",
    "string",
    "true",
    "undefined",
    "integer",
];

/// A refused construct: what it is, and the 1-based line and column where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub what: String,
    pub line: usize,
    pub column: usize,
}

type Checked = Result<(), Refused>;

fn refuse(what: impl Into<String>, span: minijinja::machinery::Span) -> Checked {
    Err(Refused {
        what: what.into(),
        line: usize::from(span.start_line),
        column: usize::from(span.start_col) + 1,
    })
}

/// Checks a parsed template.
pub fn check(stmt: &Stmt<'_>) -> Checked {
    match stmt {
        Stmt::Template(t) => body(&t.children),
        Stmt::EmitExpr(e) => expr(&e.expr),
        Stmt::EmitRaw(_) => Ok(()),
        Stmt::ForLoop(f) => {
            if f.recursive {
                return refuse("a recursive loop", f.span());
            }
            expr(&f.target)?;
            expr(&f.iter)?;
            if let Some(filter) = &f.filter_expr {
                expr(filter)?;
            }
            body(&f.body)?;
            body(&f.else_body)
        }
        Stmt::IfCond(i) => {
            expr(&i.expr)?;
            body(&i.true_body)?;
            body(&i.false_body)
        }
        Stmt::WithBlock(w) => refuse("`with`: templates assign nothing", w.span()),
        Stmt::Set(s) => refuse("`set`: templates assign nothing", s.span()),
        Stmt::SetBlock(s) => refuse("`set`: templates assign nothing", s.span()),
        Stmt::AutoEscape(a) => refuse("`autoescape`", a.span()),
        Stmt::FilterBlock(f) => refuse("a filter block: apply filters to values", f.span()),
        Stmt::Do(d) => refuse("`do`", d.span()),
    }
}

fn body(stmts: &[Stmt<'_>]) -> Checked {
    stmts.iter().try_for_each(check)
}

fn args(args: &[CallArg<'_>]) -> Checked {
    args.iter().try_for_each(|arg| match arg {
        CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
            expr(e)
        }
    })
}

fn expr(e: &Expr<'_>) -> Checked {
    match e {
        Expr::Var(_) | Expr::Const(_) => Ok(()),
        Expr::Slice(s) => {
            expr(&s.expr)?;
            [&s.start, &s.stop, &s.step]
                .into_iter()
                .flatten()
                .try_for_each(expr)
        }
        Expr::UnaryOp(u) => expr(&u.expr),
        Expr::BinOp(b) => {
            if matches!(b.op, BinOpKind::Mul | BinOpKind::Pow) {
                return refuse("`*` and `**`", b.span());
            }
            expr(&b.left)?;
            expr(&b.right)
        }
        Expr::Compare(c) => {
            expr(&c.expr)?;
            c.ops.iter().try_for_each(|op| expr(&op.expr))
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr)?;
            expr(&i.true_expr)?;
            i.false_expr.as_ref().map_or(Ok(()), expr)
        }
        Expr::Filter(f) => {
            if !FILTERS.contains(&f.name) && f.name != URLENCODE {
                return refuse(format!("unknown filter `{}`", f.name), f.span());
            }
            if let Some(inner) = &f.expr {
                expr(inner)?;
            }
            args(&f.args)
        }
        Expr::Test(t) => {
            if !TESTS.contains(&t.name) {
                return refuse(format!("unknown test `{}`", t.name), t.span());
            }
            expr(&t.expr)?;
            args(&t.args)
        }
        Expr::GetAttr(g) => expr(&g.expr),
        Expr::GetItem(g) => {
            expr(&g.expr)?;
            expr(&g.subscript_expr)
        }
        Expr::Call(c) => match &c.expr {
            Expr::Var(v) if v.id == "range" => args(&c.args),
            _ => refuse("a call: only `range(…)` may be called", c.span()),
        },
        Expr::List(l) => l.items.iter().try_for_each(expr),
        Expr::Map(m) => m.keys.iter().chain(&m.values).try_for_each(expr),
    }
}
