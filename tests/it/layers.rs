//! The floors of ARCHITECTURE.md hold: no module of `src/` uses one on a higher floor.
//!
//! Reads the numbered list under `## Floors` (each line a floor number and the modules on
//! it in backticks), then every `crate::<module>` path in every file under `src/` (in
//! `use` lines and inline, comments and string literals left out), and fails naming the
//! file, the line and both floors where a module reaches up. Uses within one floor are
//! allowed as long as they form no circle, which is checked too; a module on no floor, or
//! a listed one that does not exist, fails as well, so the list stays the whole truth.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One use of another module: where it stands and what it names.
struct Use {
    file: String,
    line: usize,
    from: String,
    to: String,
}

#[test]
fn no_module_uses_a_higher_floor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let floors = floors(&architecture);
    assert!(!floors.is_empty(), "ARCHITECTURE.md lists no floors");
    let mut problems = Vec::new();
    for module in floors.keys() {
        let file = root.join("src").join(format!("{module}.rs"));
        let folder = root.join("src").join(module).join("mod.rs");
        if !file.exists() && !folder.exists() {
            problems.push(format!(
                "ARCHITECTURE.md puts `{module}` on a floor, but src/ has no such module"
            ));
        }
    }
    let uses = uses(&root.join("src"), root);
    let mut unplaced = BTreeSet::new();
    for u in &uses {
        for module in [&u.from, &u.to] {
            if !floors.contains_key(module) && unplaced.insert(module.clone()) {
                problems.push(format!(
                    "{}:{}: module `{module}` is on no floor of ARCHITECTURE.md",
                    u.file, u.line
                ));
            }
        }
    }
    for file in module_files(&root.join("src")) {
        let module = module_of(&root.join("src"), &file);
        if !floors.contains_key(&module) && unplaced.insert(module.clone()) {
            problems.push(format!(
                "{}: module `{module}` is on no floor of ARCHITECTURE.md",
                relative(&file, root)
            ));
        }
    }
    // Same-floor uses, for the circle check: module -> (module -> first place).
    let mut level: BTreeMap<&str, BTreeMap<&str, &Use>> = BTreeMap::new();
    for u in &uses {
        let (Some(&from), Some(&to)) = (floors.get(&u.from), floors.get(&u.to)) else {
            continue;
        };
        if from < to {
            problems.push(format!(
                "{}:{}: `{}` (floor {from}) uses `{}` (floor {to}), a higher floor",
                u.file, u.line, u.from, u.to
            ));
        } else if from == to {
            level.entry(&u.from).or_default().entry(&u.to).or_insert(u);
        }
    }
    if let Some(circle) = circle(&level) {
        let places: Vec<String> = circle
            .iter()
            .map(|u| format!("`{}` uses `{}` at {}:{}", u.from, u.to, u.file, u.line))
            .collect();
        problems.push(format!(
            "modules of one floor use each other in a circle: {}",
            places.join("; ")
        ));
    }
    assert!(
        problems.is_empty(),
        "the floors of ARCHITECTURE.md do not hold:\n{}",
        problems.join("\n")
    );
}

/// The floor of every module named in ARCHITECTURE.md's `## Floors` list.
fn floors(architecture: &str) -> BTreeMap<String, usize> {
    let mut floors = BTreeMap::new();
    let section = architecture
        .split("\n## ")
        .find(|s| s.starts_with("Floors"))
        .expect("ARCHITECTURE.md has a `## Floors` section");
    for line in section.lines() {
        let Some((number, rest)) = line.split_once(". ") else {
            continue;
        };
        let Ok(floor) = number.trim().parse::<usize>() else {
            continue;
        };
        for module in rest.split('`').skip(1).step_by(2) {
            let previous = floors.insert(module.to_string(), floor);
            assert!(
                previous.is_none(),
                "ARCHITECTURE.md puts `{module}` on two floors"
            );
        }
    }
    floors
}

/// Every `.rs` file under `src/` but the crate roots (`lib.rs` declares, `main.rs` is the
/// binary, which uses the library by its name).
fn module_files(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read src/") {
            let path = entry.expect("read src/").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !(folder == src && (path.ends_with("lib.rs") || path.ends_with("main.rs")))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level module a file of `src/` belongs to: `src/store/sqlite/queue.rs` is `store`.
fn module_of(src: &Path, file: &Path) -> String {
    let inside = file.strip_prefix(src).expect("a file of src/");
    let first = inside
        .components()
        .next()
        .expect("a path")
        .as_os_str()
        .to_string_lossy();
    first
        .strip_suffix(".rs")
        .unwrap_or(first.as_ref())
        .to_string()
}

fn relative(file: &Path, root: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
}

/// Every `crate::<other module>` path in the files of `src/`.
fn uses(src: &Path, root: &Path) -> Vec<Use> {
    let mut uses = Vec::new();
    for file in module_files(src) {
        let from = module_of(src, &file);
        let text = std::fs::read_to_string(&file).expect("read a file of src/");
        let mut paths = crate_paths(&code_only(&text));
        paths.dedup();
        for (line, to) in paths {
            if to != from {
                uses.push(Use {
                    file: relative(&file, root),
                    line,
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    uses
}

/// `text` with comments and the contents of string and character literals blanked out
/// (line breaks kept, so line numbers still hold).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"' | '#')) && (i == 0 || !is_ident(chars[i - 1]))
        {
            // A raw string: r"…", r#"…"#; anything else starting `r#` is a raw identifier.
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let end: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            out.push('r');
            i += 2 + hashes;
            while i < chars.len() && !chars[i..].starts_with(&end) {
                out.push(blank(chars[i]));
                i += 1;
            }
            i += end.len();
            out.push('"');
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), or else a lifetime.
            if next == Some('\\') {
                out.push('\'');
                i += 3; // the quote, the backslash and the escaped character
                while i < chars.len() && chars[i] != '\'' {
                    out.push(' ');
                    i += 1;
                }
                out.push('\'');
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// (line, module) for every `crate::module` and every module of `crate::{a, b::c}`.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        let mut offset = 0;
        while let Some(at) = rest.find("crate::") {
            let before = line[..offset + at].chars().next_back();
            let after = &rest[at + "crate::".len()..];
            rest = after;
            offset = line.len() - rest.len();
            if before.is_some_and(|b| is_ident(b) || b == '$') {
                continue; // `hookline_crate::`, `$crate::`
            }
            let after = after.trim_start();
            if let Some(group) = after.strip_prefix('{') {
                let mut depth = 0;
                let mut at_name = true;
                let mut name = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => at_name = true,
                        c if at_name && is_ident(c) => name.push(c),
                        c if at_name && c.is_whitespace() && name.is_empty() => {}
                        _ => {
                            if at_name && !name.is_empty() {
                                found.push((n + 1, std::mem::take(&mut name)));
                            }
                            at_name = false;
                        }
                    }
                }
                if !name.is_empty() {
                    found.push((n + 1, name));
                }
            } else {
                let name: String = after.chars().take_while(|&c| is_ident(c)).collect();
                if !name.is_empty() {
                    found.push((n + 1, name));
                }
            }
        }
    }
    found
}

/// A circle of uses among the modules of one floor, if there is one.
fn circle<'a>(uses: &BTreeMap<&'a str, BTreeMap<&'a str, &'a Use>>) -> Option<Vec<&'a Use>> {
    fn visit<'a>(
        module: &'a str,
        uses: &BTreeMap<&'a str, BTreeMap<&'a str, &'a Use>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a Use>> {
        if let Some(start) = path.iter().position(|&m| m == module) {
            let mut ring: Vec<&str> = path[start..].to_vec();
            ring.push(module);
            return Some(ring.windows(2).map(|w| uses[w[0]][w[1]]).collect());
        }
        if !done.insert(module) {
            return None;
        }
        path.push(module);
        for &next in uses.get(module).into_iter().flat_map(|m| m.keys()) {
            if let Some(found) = visit(next, uses, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    uses.keys()
        .find_map(|&m| visit(m, uses, &mut Vec::new(), &mut done))
}

#[test]
fn the_scanner_finds_paths_in_code_only() {
    let code = code_only(
        "use crate::store::Store; // crate::api\nlet s = \"crate::cli\";\n/* crate::x */ let c = '\"';\nuse crate::{event::Event, ids};\nf(crate::config::X, $crate::no, r#\"crate::raw\"#);\n",
    );
    let found: Vec<(usize, String)> = crate_paths(&code);
    let names: Vec<(usize, &str)> = found.iter().map(|(n, m)| (*n, m.as_str())).collect();
    assert_eq!(
        names,
        vec![(1, "store"), (4, "event"), (4, "ids"), (5, "config")]
    );
}
