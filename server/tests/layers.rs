//! The server's modules form layers (see ARCHITECTURE.md): a module may use
//! only modules of a lower layer, so there is no import loop. This test reads
//! every `crate::` path in `server/src` (tests left out) and checks the rule.

use std::{collections::BTreeSet, fs, path::Path};

/// Each top-level module of `server/src` and its layer, from the ground up.
const LAYERS: &[(&str, u8)] = &[
    ("clock", 0),
    ("error", 0),
    ("data_dir", 0),
    ("metrics", 0),
    ("logfile", 1),
    ("store", 1),
    ("health", 1),
    ("auth", 2),
    ("infra", 2),
    ("uploads", 2),
    ("ops", 3),
    ("clusters", 3),
    ("kinds", 4),
    ("retention", 4),
    ("config", 4),
    ("managed", 5),
    ("grpc", 6),
    ("serve", 7),
];

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, layer)| *layer)
        .unwrap_or_else(|| panic!("module `{module}` has no layer: add it to LAYERS and ARCHITECTURE.md"))
}

/// The top-level modules that `source` names through `crate::`, whether as
/// `crate::a::b` or inside `use crate::{a::b, c}`.
fn used_modules(source: &str) -> BTreeSet<String> {
    let source = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut used = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Names at the group's top level: after `{` and after each `,` at depth 0.
            let mut depth = 0;
            let mut expect_name = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expect_name = true,
                    c if expect_name && depth == 0 && (c.is_ascii_lowercase() || c == '_') => {
                        let name: String =
                            group[i..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                        used.insert(name);
                        expect_name = false;
                    }
                    c if !c.is_whitespace() => expect_name = false,
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

fn rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let own = layer(&module);
        for used in used_modules(&fs::read_to_string(&file).unwrap()) {
            checked += 1;
            if used != module && layer(&used) >= own {
                violations.push(format!(
                    "{} (layer {own}) uses `{used}` (layer {})",
                    relative.display(),
                    layer(&used)
                ));
            }
        }
    }
    assert!(checked > 50, "read only {checked} crate:: paths; is the parser still right?");
    assert!(violations.is_empty(), "layer rule broken:\n{}", violations.join("\n"));
}

#[test]
fn names_inside_use_groups_are_found() {
    let source = "use crate::{\n    auth::Caller,\n    error::{Error, Result},\n    logfile,\n};\nfn f() { crate::clock::now_ms(); }";
    let used: Vec<String> = used_modules(source).into_iter().collect();
    assert_eq!(used, ["auth", "clock", "error", "logfile"]);
}
