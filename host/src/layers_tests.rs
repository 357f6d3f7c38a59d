//! The host crate's top-level modules form no import cycle, and each depends only on the
//! layers ARCHITECTURE.md draws beneath it. Below the host the layers are crates, which the
//! compiler holds (core, the stores, aws, engine); inside the host crate, this test does.
//! Paths into those crates (`crate::store`, `crate::ids`, re-exported in `lib.rs`) are not
//! modules of this crate, so they draw no arrow here.
//!
//! The test reads `host/src` and builds the graph of `crate::<module>` paths (`use` items and
//! paths in code, `crate::{a, b::c}` groups included) between top-level modules. Comments,
//! string and character literals are blanked first, so a doc link or a message naming a module
//! is no arrow. Test code is left out: an inline `#[cfg(test)] mod ... { ... }` is cut out of
//! its file, and a file a `#[cfg(test)] mod name;` declares (`name.rs` or `name/mod.rs`, or its
//! `#[path]`) is not read at all, with its folder of submodules. Tests may reach across layers
//! (the OpenAPI tests start a whole server); production code may not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may depend on modules of lower layers only. `lib.rs`
/// and `main.rs` sit above them all.
const LAYERS: &[&[&str]] = &[
    // A plain helper with no dependency; the client commands, which know the host only as a
    // remote API (over HTTP, as JSON) and so name no module of it.
    &["ratelimit", "cli"],
    // The metrics recorder and the names of what is recorded.
    &["telemetry"],
    // Tenants and keys; agent endpoints and protocols.
    &["tenancy", "agents"],
    // Plain settings, one file per section.
    &["config"],
    &["artifacts", "notifications"],
    &["scheduler"],
    &["callbacks", "components"],
    &["executions"],
    // The HTTP surface and its assembly.
    &["api"],
    &["server"],
    // The research pipeline (feature `pipeline`): its routes, section and demo, built on the
    // API and the server, and named by nothing beneath.
    &["pipeline"],
];

/// `(from, to) -> files of `from` that name `to`` for the top-level modules of `src`.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules: those `lib.rs` declares outside `#[cfg(test)]`.
fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let lib = src.join("lib.rs");
    let source = std::fs::read_to_string(&lib).expect("read host/src/lib.rs");
    let (code, _) = production_code(&lib, &source);
    code.split(';')
        .filter_map(|item| {
            let words: Vec<&str> = item.split_whitespace().collect();
            match words.as_slice() {
                [.., "mod", name] => Some((*name).to_string()),
                _ => None,
            }
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `source` with comments, string literals and character literals replaced by spaces (the
/// quotes are kept), so that only code is left to read paths from.
fn blank(source: &str) -> String {
    let b = source.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank_to = |out: &mut Vec<u8>, from: usize, to: usize| {
        out.extend(
            b[from..to]
                .iter()
                .map(|&c| if c == b'\n' { c } else { b' ' }),
        );
    };
    while i < b.len() {
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if b[i..].starts_with(b"//") {
            let end = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |n| i + n);
            blank_to(&mut out, i, end);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank_to(&mut out, i, j);
            i = j;
        } else if !ident_before
            && (b[i] == b'r' || b[i..].starts_with(b"br"))
            && raw_string_start(&b[i..]).is_some()
        {
            let (open, hashes) = raw_string_start(&b[i..]).expect("checked");
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let body = i + open;
            let end = b[body..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(b.len(), |n| body + n + close.len());
            out.push(b'"');
            blank_to(&mut out, i + 1, end - 1);
            out.push(b'"');
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            out.push(b'"');
            blank_to(&mut out, i + 1, end - 1);
            out.push(b'"');
            i = end;
        } else if b[i] == b'\'' && is_char_literal(&source[i..]) {
            let body = if b.get(i + 1) == Some(&b'\\') {
                i + 3
            } else {
                i + 2
            };
            let end = b[body..]
                .iter()
                .position(|&c| c == b'\'')
                .map_or(b.len(), |n| body + n + 1);
            out.push(b'\'');
            blank_to(&mut out, i + 1, end - 1);
            out.push(b'\'');
            i = end;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("blanking keeps UTF-8: only ASCII bytes are replaced")
}

/// For `r"`, `r#"`, `br##"`...: the length of the opening and its number of `#`.
fn raw_string_start(b: &[u8]) -> Option<(usize, usize)> {
    let start = if b.starts_with(b"br") { 2 } else { 1 };
    let hashes = b[start..].iter().take_while(|&&c| c == b'#').count();
    (b.get(start + hashes) == Some(&b'"')).then_some((start + hashes + 1, hashes))
}

/// `'x'` or `'\n'`-like, as opposed to a lifetime (`'a`); `rest` starts at the quote.
fn is_char_literal(rest: &str) -> bool {
    let mut chars = rest.chars().skip(1);
    match chars.next() {
        Some('\\') => true,
        Some(_) => chars.next() == Some('\''),
        None => false,
    }
}

/// The end (just past the closing brace) of the block whose `{` is at `open`.
fn block_end(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// A `#[cfg(test)]` module declaration at `at` (just past the attribute): its name, its
/// `#[path]` if any, and where its body opens (`None` for `mod name;`).
struct TestModule {
    name: String,
    path: Option<String>,
    body: Option<usize>,
    end: usize,
}

fn test_module_after(code: &str, source: &str, mut at: usize) -> Option<TestModule> {
    let mut path = None;
    loop {
        let rest = code[at..].trim_start();
        at = code.len() - rest.len();
        if rest.starts_with("#[") {
            let close = at + rest.find(']')? + 1;
            // The attribute's string is blanked in `code`; read it from the source.
            let attribute = &source[at..close];
            if let Some(p) = attribute.strip_prefix("#[path") {
                path = p.split('"').nth(1).map(str::to_string);
            }
            at = close;
            continue;
        }
        let rest = rest
            .strip_prefix("pub(crate) ")
            .or_else(|| rest.strip_prefix("pub(super) "))
            .or_else(|| rest.strip_prefix("pub "))
            .unwrap_or(rest);
        let rest = rest.strip_prefix("mod ")?.trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let after = code.len() - rest.len() + name.len();
        let tail = code[after..].trim_start();
        let next = code.len() - tail.len();
        return match tail.chars().next()? {
            ';' => Some(TestModule {
                name,
                path,
                body: None,
                end: next + 1,
            }),
            '{' => Some(TestModule {
                name,
                path,
                body: Some(next),
                end: block_end(code, next),
            }),
            _ => None,
        };
    }
}

/// The code of `source` outside its inline test modules, and the files of the test modules
/// it declares (relative to the folder of `file`'s submodules).
fn production_code(file: &Path, source: &str) -> (String, Vec<PathBuf>) {
    let code = blank(source);
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let dir = file.parent().expect("a file has a folder");
    let submodules = if matches!(stem, "mod" | "lib" | "main") {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    let (mut kept, mut test_files, mut from) = (String::new(), Vec::new(), 0);
    let mut search = 0;
    while let Some(found) = code[search..].find("#[cfg(test)]") {
        let attribute = search + found;
        let after = attribute + "#[cfg(test)]".len();
        search = after;
        let Some(module) = test_module_after(&code, source, after) else {
            continue;
        };
        kept.push_str(&code[from..attribute]);
        from = module.end;
        search = module.end;
        match (module.body, module.path) {
            (Some(_), _) => {}
            (None, Some(path)) => test_files.push(dir.join(path)),
            (None, None) => {
                test_files.push(submodules.join(format!("{}.rs", module.name)));
                test_files.push(submodules.join(&module.name));
            }
        }
    }
    kept.push_str(&code[from..]);
    (kept, test_files)
}

/// The top-level module names that `code` reaches as `crate::<name>` or in a
/// `crate::{...}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("crate::") {
        let start = at + found;
        at = start + "crate::".len();
        // `crate::` and not `mycrate::`.
        if code[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[at..];
        if rest.starts_with('{') {
            let end = block_end(code, at);
            let group = &code[at + 1..end - 1];
            let mut depth = 0;
            let mut item = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.insert(ident(&group[item..i]));
                        item = i + 1;
                    }
                    _ => {}
                }
            }
            names.insert(ident(&group[item..]));
        } else {
            names.insert(ident(rest));
        }
    }
    names.remove("");
    names
}

fn graph(src: &Path) -> Graph {
    let modules = top_level_modules(src);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut sources = BTreeMap::new();
    let mut test_files: Vec<PathBuf> = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("read a source file");
        let (code, tests) = production_code(&file, &source);
        test_files.extend(tests);
        sources.insert(file, code);
    }
    let mut graph = Graph::new();
    for (file, code) in &sources {
        if test_files.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        let relative = file.strip_prefix(src).expect("under src");
        let Some(top) = relative.components().next() else {
            continue;
        };
        let top = top.as_os_str().to_string_lossy();
        let from = top.strip_suffix(".rs").unwrap_or(&top).to_string();
        if !modules.contains(&from) {
            continue;
        }
        for to in crate_paths(code) {
            if to != from && modules.contains(&to) {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    graph
}

/// The strongly connected components of more than one module (Tarjan's algorithm), each
/// sorted: every one is an import cycle.
fn cycles(graph: &Graph, modules: &BTreeSet<String>) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flat_map(BTreeMap::keys) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for module in modules {
        if !tarjan.index.contains_key(module.as_str()) {
            tarjan.visit(module);
        }
    }
    tarjan.found
}

/// The arrows inside `component`, with the files that draw them, to say how to break it.
fn describe(graph: &Graph, component: &[String]) -> String {
    let mut lines = vec![format!("cycle between {}:", component.join(", "))];
    for from in component {
        for (to, files) in graph.get(from).into_iter().flatten() {
            if component.contains(to) {
                let files: Vec<_> = files.iter().map(String::as_str).collect();
                lines.push(format!("  {from} -> {to} ({})", files.join(", ")));
            }
        }
    }
    lines.join("\n")
}

#[test]
fn the_top_level_modules_form_no_import_cycle() {
    let src = src_dir();
    let graph = graph(&src);
    let found = cycles(&graph, &top_level_modules(&src));
    let report: Vec<String> = found.iter().map(|c| describe(&graph, c)).collect();
    assert!(found.is_empty(), "{}", report.join("\n"));
}

#[test]
fn each_module_depends_only_on_lower_layers() {
    let src = src_dir();
    let modules = top_level_modules(&src);
    let layer: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (*n, i)))
        .collect();
    let unplaced: Vec<_> = modules
        .iter()
        .filter(|m| !layer.contains_key(m.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "top-level modules with no layer in LAYERS (and ARCHITECTURE.md): {unplaced:?}"
    );
    let mut wrong = Vec::new();
    for (from, targets) in graph(&src) {
        for (to, files) in targets {
            if layer[to.as_str()] >= layer[from.as_str()] {
                wrong.push(format!("{from} -> {to} ({files:?})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows to the same or a higher layer:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_code_only_and_leaves_tests_out() {
    let source = r##"
use crate::{ids::TenantId, journal::{self, Event}};
// crate::commented
/* crate::block /* nested crate::inner */ */
const A: &str = "crate::in_a_string";
const B: &str = r#"crate::raw "quoted" "#;
fn f<'a>(x: &'a str) -> char { let _ = crate::store::Error::NotFound; '{' }
#[cfg(test)]
mod tests {
    use crate::server::Server;
    fn g() -> char { '}' }
}
#[cfg(test)]
#[path = "more_tests.rs"]
mod more;
#[cfg(test)]
mod contract_tests;
"##;
    let (code, test_files) = production_code(Path::new("/src/x/mod.rs"), source);
    let names: Vec<_> = crate_paths(&code).into_iter().collect();
    assert_eq!(names, ["ids", "journal", "store"]);
    assert_eq!(
        test_files,
        [
            PathBuf::from("/src/x/more_tests.rs"),
            PathBuf::from("/src/x/contract_tests.rs"),
            PathBuf::from("/src/x/contract_tests"),
        ]
    );
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph = Graph::new();
    let mut arrow = |from: &str, to: &str| {
        graph
            .entry(from.into())
            .or_default()
            .entry(to.into())
            .or_default()
            .insert(format!("{from}.rs"));
    };
    arrow("a", "b");
    arrow("b", "c");
    arrow("c", "a");
    arrow("c", "d");
    let modules = ["a", "b", "c", "d"].map(String::from).into();
    let found = cycles(&graph, &modules);
    assert_eq!(found, [["a", "b", "c"].map(String::from)]);
    assert!(describe(&graph, &found[0]).contains("c -> a (c.rs)"));
}
