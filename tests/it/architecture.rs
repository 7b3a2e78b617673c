//! The house rules of `src/lib.rs`, checked on the source tree: each test fails when an
//! invariant is broken.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    assert!(files.len() > 5);
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Code lines (doc and line comments dropped).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
}

#[test]
fn only_the_store_names_redb() {
    let mut offenders = Vec::new();
    for (path, text) in sources() {
        if path.starts_with("src/store/") {
            continue;
        }
        for (n, line) in code_lines(&text) {
            if line.contains("redb::") || line.contains("use redb") {
                offenders.push(format!("{path}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "redb named outside src/store:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_usize_in_table_layouts_or_encoders() {
    let srcs = sources();
    let schema = &srcs
        .iter()
        .find(|(p, _)| p == "src/store/schema.rs")
        .unwrap()
        .1;
    for (n, line) in code_lines(schema) {
        assert!(
            !line.contains("usize") || !line.contains("Definition"),
            "schema.rs:{}: usize in a table layout: {line}",
            n + 1
        );
    }
    let codec = &srcs
        .iter()
        .find(|(p, _)| p == "src/store/codec.rs")
        .unwrap()
        .1;
    // Encoder methods take fixed-width integers only.
    let enc = codec
        .split("impl Enc")
        .nth(1)
        .unwrap()
        .split("\n}\n")
        .next()
        .unwrap();
    for line in enc.lines().filter(|l| l.trim_start().starts_with("pub fn")) {
        assert!(
            !line.contains("usize"),
            "codec.rs encoder takes usize: {line}"
        );
    }
    let model = &srcs.iter().find(|(p, _)| p == "src/model.rs").unwrap().1;
    for (n, line) in code_lines(model) {
        let t = line.trim_start();
        assert!(
            !(t.starts_with("pub ") && t.contains(": usize")),
            "model.rs:{}: usize field in a stored record: {line}",
            n + 1
        );
    }
}

#[test]
fn pure_stages_do_no_file_or_network_io() {
    for (path, text) in sources() {
        if !path.starts_with("src/pipeline/") && path != "src/model.rs" {
            continue;
        }
        for (n, line) in code_lines(&text) {
            for banned in ["std::net", "TcpStream", "std::fs", "File::"] {
                assert!(
                    !line.contains(banned),
                    "{path}:{}: {banned} in a pure stage: {line}",
                    n + 1
                );
            }
        }
    }
}

#[test]
fn every_module_says_what_it_owns_and_must_not_do() {
    for (path, text) in sources() {
        assert!(text.starts_with("//!"), "{path} has no module doc");
        if path == "src/main.rs" || path == "src/lib.rs" {
            continue;
        }
        let doc: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            doc.contains("Owns") || doc.contains("owns"),
            "{path}: module doc does not say what it owns"
        );
        assert!(
            doc.contains("Must not") || doc.contains("must not"),
            "{path}: module doc does not say what it must not do"
        );
    }
}
