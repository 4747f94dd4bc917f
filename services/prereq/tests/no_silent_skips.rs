//! The guard of issue 17: no test of the workspace may pass by doing nothing. It reads every
//! test source (the `tests/` directories and `#[cfg(test)]` modules alike) and fails on the
//! shapes a silent skip takes: a bare `return` right after a check for a tool, a file or the
//! corpus, a `let ... else { return }` on such a check, and a printed "skipped". A test that
//! needs something outside the workspace uses `configsync_prereq` instead (the crate's doc).

use std::path::{Path, PathBuf};

/// Words of a check that a prerequisite is there, as they appear on the line of the check.
const PROBES: &[&str] = &[
    "exists()",
    "is_dir()",
    "is_file()",
    "available()",
    "which",
    "on_path",
    "have_",
    "corpus",
    "Kubectl::new",
    "find_tool",
    "var_os(",
];

/// How many lines before a bare `return` a check counts as its cause.
const WINDOW: usize = 3;

/// One offending line: `path:line: text`; `offset` is the line number `text` starts after.
fn scan(path: &str, text: &str, offset: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim();
        if code.starts_with("//") {
            continue;
        }
        let bare_return = code == "return;"
            || code == "return"
            || code.contains("else { return }")
            || code.contains("else { return; }")
            || code.contains("else {return}");
        let probed = bare_return
            && lines[i.saturating_sub(WINDOW)..=i]
                .iter()
                .any(|l| PROBES.iter().any(|p| l.contains(p)));
        let prints_skip = ["println!(", "print!("].iter().any(|m| code.contains(m))
            && ["\"skipped", "\"skipping", "not checked:"]
                .iter()
                .any(|s| code.contains(s));
        if probed || prints_skip {
            found.push(format!("{path}:{}: {code}", offset + i + 1));
        }
    }
    found
}

/// Every `.rs` file under `dir`, skipping build output and hidden directories.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The test code of a file, and the line number it starts at: all of an integration test
/// (`tests/` directories, benches), or a source file from its `#[cfg(test)]` on (the code
/// before it is the product's, where an early return is ordinary).
fn test_code<'a>(relative: &str, text: &'a str) -> Option<(usize, &'a str)> {
    if relative.contains("/tests/") || relative.starts_with("tests/") {
        return Some((0, text));
    }
    let start = text.find("#[cfg(test)]")?;
    Some((text[..start].lines().count(), &text[start..]))
}

#[test]
fn no_test_returns_early_on_a_missing_prerequisite() {
    let root = configsync_prereq::workspace_root()
        .canonicalize()
        .expect("workspace root");
    let mut files = Vec::new();
    for top in ["services", "tools", "tests"] {
        rust_files(&root.join(top), &mut files);
    }
    // The workspace has well over a hundred test files: finding few means the walk is wrong.
    assert!(files.len() > 100, "only {} Rust files found", files.len());
    let this = Path::new(file!()).file_name().unwrap();
    let mut offending = Vec::new();
    let mut scanned = 0;
    for file in files {
        if file.file_name() == Some(this) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let relative = file.strip_prefix(&root).unwrap().display().to_string();
        if let Some((offset, code)) = test_code(&relative, &text) {
            scanned += 1;
            offending.extend(scan(&relative, code, offset));
        }
    }
    assert!(scanned > 50, "only {scanned} test files scanned");
    assert!(
        offending.is_empty(),
        "tests that pass by doing nothing when a prerequisite is missing; use \
         configsync_prereq (require_* and a build.rs cfg, see its crate doc) instead:\n{}",
        offending.join("\n")
    );
}

#[test]
fn the_guard_catches_the_shapes_it_was_written_for() {
    // Each as it stood in the tree before issue 17.
    let silent = [
        "    if !corpus.exists() {\n        eprintln!(\"gone\");\n        return;\n    }\n",
        "    let Some(corpus) = corpus() else { return };\n",
        "    let Some(k) = Kubectl::new(&sim) else { return };\n",
        "    if !have_kubectl() {\n        return;\n    }\n",
        "    if !GitDaemon::available() {\n        watcher.stop().await;\n        return;\n    }\n",
        "        println!(\"skipped: kubectl is not on PATH\");\n",
        "        eprintln!(\"recovery not checked: no git daemon\");\n",
    ];
    for text in silent {
        assert_eq!(scan("t.rs", text, 0).len(), 1, "missed:\n{text}");
    }
    // Early returns that are not skips: a poll that is done, a value returned.
    let fine = [
        "        if answer.contains(\" 200 \") {\n            return;\n        }\n",
        "    if !path.exists() {\n        return Err(e);\n    }\n",
        "    // if !corpus.exists() { return; }\n",
    ];
    for text in fine {
        assert_eq!(
            scan("t.rs", text, 0),
            Vec::<String>::new(),
            "flagged:\n{text}"
        );
    }
}
